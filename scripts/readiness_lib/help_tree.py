"""The commands and options of both binaries, read from their own `--help` pages, and which
command and options a command line names."""

import re
import subprocess
from dataclasses import dataclass, field

from .report import ReadinessError

BINARIES = ("sync-server", "replica-cli")
PLACEHOLDER = re.compile(r"^(<.*>|…|\.\.\.|[A-Z]+)$")  # where the docs mean any command: `sync-server <command>`


class Command:
    """One `--help` page: its subcommands (one may be the default) and options (name → takes a value)."""

    def __init__(self, path, text):
        def section(title):
            found = re.search(rf"^{title}:\n(.*?)(?:\n\n|\Z)", text, re.S | re.M)
            return found.group(1).splitlines() if found else []

        self.path, self.subcommands, self.options = tuple(path), {}, {"--help": False, "-h": False}
        entries = [re.match(r"^  (\S+)( \(default\))?", line) for line in section("SUBCOMMANDS")]
        self.names = [e.group(1) for e in entries if e]
        self.default = next((e.group(1) for e in entries if e and e.group(2)), None)
        for entry in filter(None, (re.match(r"^  (?:-\w, )?(--[\w-]+)( <[^>]+>)?", s) for s in section("OPTIONS"))):
            self.options[entry.group(1)] = bool(entry.group(2))

    def leaves(self):
        return [self] if not self.names else [leaf for c in self.subcommands.values() for leaf in c.leaves()]

    def all_options(self):
        """This command's options and those of the commands under it (accepted before the command)."""
        options = dict(self.options)
        for child in self.subcommands.values():
            options.update(child.all_options())
        return options


def discover(binary_path, env):
    """Walks `--help` of a binary and every subcommand; every page must have an overview."""

    def walk(path):
        done = subprocess.run([binary_path, *path, "--help"], capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0 or not re.search(r"^OVERVIEW: \S", done.stdout, re.M):
            raise ReadinessError(f"`{binary_path} {' '.join(path)} --help` printed no overview")
        node = Command(path, done.stdout)
        node.subcommands = {name: walk([*path, name]) for name in node.names}
        return node

    return walk([])


@dataclass
class Invocation:
    """A command line resolved against the --help tree."""

    binary: str
    path: tuple = ()
    options: list = field(default_factory=list)
    error: str = None
    placeholder: bool = False
    help: bool = False


def resolve(binary, root, arguments):
    """Which command and options `binary ARGUMENTS` names, or what is wrong with it."""
    node, path, hoisted, i = root, [], [], 0
    while node.names:
        token = arguments[i] if i < len(arguments) else None
        if token in node.subcommands:
            node, i = node.subcommands[token], i + 1
            path.append(token)
        elif token in ("-h", "--help", "help"):
            return Invocation(binary, tuple(path), help=True)
        elif token is not None and token.startswith("--") and node.default is None:
            hoisted.append(token)  # an option before its command: `replica-cli --data D sync`
            takes_value = node.all_options().get(token.split("=", 1)[0]) and "=" not in token
            hoisted += arguments[i + 1:i + 2] if takes_value else []
            i += 2 if takes_value else 1
        elif token is not None and PLACEHOLDER.match(token):
            return Invocation(binary, tuple(path), placeholder=True)
        elif node.default is not None:
            node = node.subcommands[node.default]
            path.append(node.path[-1])
        else:
            return Invocation(binary, tuple(path), error=f"unknown command {token or 'nothing'!r} "
                              f"(expected one of: {', '.join(node.names)})")
    options, rest, j = [], hoisted + list(arguments[i:]), 0
    while j < len(rest) and rest[j] != "--":
        name = rest[j].split("=", 1)[0]
        if name.startswith("-") and len(name) > 1 and not re.match(r"^-\d", name):
            if name in ("-h", "--help"):
                return Invocation(binary, tuple(path), help=True)
            if name not in node.options:
                return Invocation(binary, tuple(path), options, error=f"unknown option {name}")
            options.append(name)
            j += node.options[name] and "=" not in rest[j]
        j += 1
    return Invocation(binary, tuple(path), options)
