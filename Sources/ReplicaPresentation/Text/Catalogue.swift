import Foundation
import LocalStorage
import Replica
import StoreSupport

/// The languages the CLI speaks.
public enum Language: String, Sendable, CaseIterable {
    case en, cs

    /// `cs` when `LC_ALL`, `LC_MESSAGES` or `LANG` (the first one set) names Czech, else `en`.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    )
        -> Language
    {
        let value = ["LC_ALL", "LC_MESSAGES", "LANG"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
        return value?.lowercased().hasPrefix("cs") == true ? .cs : .en
    }
}

/// Every message the CLI prints to people, in English and Czech, by key.
///
/// Placeholders are `{name}`; a missing one is left as written, so a message never crashes. The
/// two catalogues have exactly the same keys (a test checks). Details that come from lower layers
/// (a validation's own sentence, a server's problem document) are passed in as `{detail}`-like
/// arguments and stay in English.
public struct Catalogue: Sendable {
    public let language: Language

    public init(_ language: Language) { self.language = language }

    public var messages: [String: String] { Self.messages(language) }

    public static func messages(_ language: Language) -> [String: String] {
        switch language {
        case .en: english
        case .cs: czech
        }
    }

    /// The message `key` with `{name}` replaced by `arguments[name]`, and a count
    /// `{name|form|form…}` by the form the number `arguments[name]` takes in this language, its
    /// `#` replaced by the number: English has two forms (1; any other), Czech three (1; 2–4; 0
    /// and 5 and more) — "1 change", "3 changes"; "1 změna", "3 změny", "5 změn". Counts are
    /// chosen in the message before any argument goes in, so an argument's own braces stay text.
    public func text(_ key: String, _ arguments: [String: String] = [:]) -> String {
        var result = counted(messages[key] ?? Self.english[key] ?? key, arguments)
        for (name, value) in arguments { result = result.replacingOccurrences(of: "{\(name)}", with: value) }
        return result
    }

    private func counted(_ template: String, _ arguments: [String: String]) -> String {
        guard template.contains("|") else { return template }
        var output = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            output += rest[..<open]
            let parts = rest[rest.index(after: open)..<close].split(separator: "|", omittingEmptySubsequences: false)
            if parts.count > 2, let value = arguments[String(parts[0])], let number = Int(value) {
                let forms = Array(parts.dropFirst())
                output += forms[min(form(of: number), forms.count - 1)].replacingOccurrences(of: "#", with: value)
            } else {
                output += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return output + rest
    }

    /// Which of the language's plural forms `number` takes.
    private func form(of number: Int) -> Int {
        switch language {
        case .en: number == 1 ? 0 : 1
        case .cs: number == 1 ? 0 : (2...4).contains(number) ? 1 : 2
        }
    }

    static let english: [String: String] = [
        // Errors
        "error.usage": "{detail}",
        "error.validation": "Invalid {field}: {detail}",
        "error.unknown-id":
            "There is no {kind} {id} in this replica (give a full ID or at least 6 of its first digits).",
        "error.store": "The local store has a problem: {detail}",
        "error.disk-full":
            "The local store cannot write: {detail}. That write changed nothing; free some space on the disk and run the command again.",
        "error.not-writable":
            "The local store {detail}. Nothing was changed and the file is not damaged (do not run repair): make it writable again (a disk remounted read-only, the file's owner or permissions) and run the command again.",
        "error.store-missing": "{detail}",
        "error.enrolment-link": "The enrolment string is not valid: {detail}",
        "error.internal": "Unexpected error: {detail}",
        "error.file": "Cannot read or write {file}: {detail}",
        "error.one-resolution": "Give exactly one of --pick, --value, --restore, --confirm-delete, --merge-into, "
            + "--not-duplicate, --accept, --move-to, --cancel, --reattach.",
        "error.map": "--map takes COLUMN=FIELD, and FIELD is one of: {fields}; \"{value}\" is not that.",
        "error.key-value": "--field takes KEY=VALUE; \"{value}\" has no =.",
        "error.move-to": "--move-to takes two times, START and END.",
        "sync.unreachable": "The server is unreachable ({detail}). Local work is safe; it is sent at the next sync.",
        "init.unreachable":
            "The server is unreachable ({detail}). Nothing was changed; run the same command again when it can be reached.",
        "sync.busy": "The server is busy ({detail}). Local work is safe; try again in a moment.",
        "sync.revoked":
            "This device was revoked by an admin: the server refuses it. Local data is kept in this replica; "
            + "ask an admin for a new enrolment string and enrol again in a new --data directory. ({detail})",
        "sync.untrusted": "The server is not the one this replica trusts: {detail}. Nothing was sent.",
        "sync.incompatible": "The server speaks another version of the protocol ({detail}); upgrade replica-cli.",
        "sync.rejected": "The server refused the request: {detail}",
        "sync.stale": "This replica was away longer than the server keeps deletions ({detail}).",
        "sync.not-enrolled": "This replica is not enrolled: {detail}",
        "sync.not-permitted": "Not permitted: {detail}",
        "sync.not-found": "Not found on the server: {detail}",
        // Results
        "contact.added": "Contact {id} created.",
        "contact.updated": "Contact {id} updated.",
        "contact.deleted": "Contact {id} deleted (undo with `replica-cli contact restore {id}`).",
        "contact.restored": "Contact {id} restored.",
        "contact.none": "No contacts.",
        "note.added": "Note {id} added.",
        "note.updated": "Note {id} updated.",
        "note.deleted": "Note {id} deleted.",
        "note.none": "No notes.",
        "schedule.added": "Schedule entry {id} added.",
        "schedule.moved": "Schedule entry {id} moved.",
        "schedule.cancelled": "Schedule entry {id} cancelled.",
        "schedule.done": "Schedule entry {id} marked done.",
        "schedule.none": "No schedule entries.",
        "unchanged": "Nothing to change: {id} already has these values.",
        "sync.done": "Synced: pushed {pushed|# change|# changes}, pulled {pulled}. Open conflicts: {conflicts}.",
        "sync.refused":
            "The server refused {count|# change; it is|# changes; they are} kept locally (see `replica-cli status`).",
        "sync.epoch": "The server was restored from a backup; this replica sent it everything it lacked.",
        "sync.rebootstrapped":
            "This replica was away longer than the server keeps deletions: it pushed its changes, then reloaded everything from the server.",
        "sync.image": "{count|# record|# records} came in one file from the server (its bootstrap image).",
        "repair.done":
            "Rebuilt replica {replica} ({user}, tenant {tenant}): kept {pending} unpushed and {refused} refused changes and {audit} history entries; the damaged file is at {file}. Run `replica-cli sync`: it pushes your changes and pulls everything else again.",
        "repair.partial":
            "Part of the damaged file could not be read: changes or history entries stored after the damaged part are not in the new file. Keep {file} for your admin.",
        "sync.watching": "Watching for changes; press Ctrl-C to stop.",
        "sync.reconnecting": "Connection lost ({detail}); trying again in {seconds} s. Local work is safe.",
        "sync.stopped": "Stopped watching.",
        "progress.sync": "sync",
        "progress.import": "import",
        "conflicts.none": "No open conflicts.",
        "conflicts.resolved": "Conflict {id} resolved. Sync to share the resolution.",
        "conflicts.side": "Side {number}",
        "conflicts.options": "Resolve with: {options}",
        "import.rejected-line": "line {line}: {detail}",
        "import.summary": "{imported|# contact|# contacts} imported, {rejected|# line|# lines} rejected.",
        "import.dry-run":
            "Dry run: {imported|# contact|# contacts} would be imported, {rejected|# line|# lines} rejected. Nothing was changed.",
        "export.written": "Wrote {count|# record|# records} to {file}.",
        "history.none": "No recorded changes.",
        "history.current": "Current values and who wrote them:",
        "history.trail": "Changes recorded on this replica:",
        "history.action.write": "local change",
        "history.action.pull": "received by sync",
        "history.action.import": "imported",
        "history.action.reissue": "refused change re-issued",
        "refused.none": "Replica {replica} has no refused changes.",
        "refused.header": "Refused changes of replica {replica} ({user}, tenant {tenant}): {count}",
        "refused.change": "#{sequence} {code}: {reason}",
        "refused.action.create": "create",
        "refused.action.edit": "edit",
        "refused.action.delete": "delete",
        "refused.action.restore": "restore",
        "refused.action.merge": "merge",
        "refused.kind.contact": "contact",
        "refused.kind.note": "note",
        "refused.kind.schedule": "schedule entry",
        "refused.done":
            "Re-issued {changes} refused changes of replica {replica} as {commands} new changes; "
            + "run `replica-cli sync` to send them.",
        "refused.dry-run":
            "Dry run: {changes} refused changes of replica {replica} would be re-issued as {commands} new changes. "
            + "Nothing was changed.",
        "refused.created": "#{sequence}: {kind} {old} is now {new}",
        "refused.left-out": "Left out, for a person to decide ({count}):",
        "refused.left-out-item": "#{sequence} {action} {kind} {id}: {reason}",
        "refused.already": "Re-issued by an earlier run, skipped: {sequences}",
        "refused.nothing-new":
            "Nothing new: every refused change of replica {replica} was re-issued by an earlier run ({sequences}).",
        "error.reissue.not-a-replica": "{directory} is not a replica directory (there is no replica store in it).",
        "error.reissue.same-replica":
            "{directory} is this replica. Run the command in the NEW replica and give the OLD one with --from.",
        "error.reissue.other-tenant":
            "{directory} belongs to tenant {detail}; its changes cannot be re-issued in this one.",
        "error.reissue.nothing-refused":
            "The replica in {directory} has no refused changes; there is nothing to re-issue.",
        "admin.not-permitted":
            "Not permitted: `admin {command}` needs an {needed} replica; this replica's role is {role}.",
        "admin.revoked": "Device {id} revoked; its next request is refused.",
        "admin.enrolment": "Enrolment for {user} ({role}), valid until {expires}:",
        "admin.none": "No devices.",
        "init.done": "Enrolled as {user} ({role}) in tenant {tenant}; replica {replica}. "
            + "Run `replica-cli sync` to fetch the data.",
        "init.need-link": "Give the enrolment string, or --server, --code and --fingerprint (or --ca).",
        "init.system-trust": "The enrolment string carries no certificate fingerprint: this replica trusts any "
            + "certificate the system's authorities issued for the server's name. Ask for a string with sha256= "
            + "to pin the server's own certificate.",
        // Labels
        "status.replica": "Replica",
        "status.user": "User",
        "status.role": "Role",
        "status.tenant": "Tenant",
        "status.server": "Server",
        "status.last-sync": "Last sync",
        "status.never": "never",
        "status.pending": "Changes to push",
        "status.refused": "Changes refused",
        "status.conflicts": "Open conflicts",
        "status.clock-offset": "Clock offset",
        "status.store-size": "Store size",
        "column.id": "ID",
        "column.name": "NAME",
        "column.company": "COMPANY",
        "column.owner": "OWNER",
        "column.status": "STATUS",
        "column.when": "WHEN",
        "column.author": "AUTHOR",
        "column.outcome": "OUTCOME",
        "column.text": "TEXT",
        "column.start": "START",
        "column.end": "END",
        "column.title": "TITLE",
        "column.assignees": "ASSIGNEES",
        "column.kind": "KIND",
        "column.field": "FIELD",
        "column.user": "USER",
        "column.device": "DEVICE",
        "column.action": "ACTION",
        "column.value": "VALUE",
        "column.role": "ROLE",
        "column.last-seen": "LAST SEEN",
        "column.lag": "BEHIND",
        "column.revoked": "REVOKED",
        "label.id": "ID",
        "label.name": "Name",
        "label.company": "Company",
        "label.owner": "Owner",
        "label.status": "Status",
        "label.phones": "Phones",
        "label.emails": "E-mails",
        "label.tags": "Tags",
        "label.fields": "Fields",
        "label.address": "Address",
        "label.title": "Title",
        "label.lifecycle": "State",
        "label.conflicts": "Conflicting fields",
        "label.notes": "Notes",
        "yes": "yes",
        "no": "no",
    ]

    static let czech: [String: String] = [
        "error.usage": "{detail}",
        "error.validation": "Neplatná hodnota {field}: {detail}",
        "error.unknown-id": "V této replice není {kind} {id} (zadejte celé ID nebo alespoň jeho prvních 6 číslic).",
        "error.store": "Místní úložiště má problém: {detail}",
        "error.disk-full":
            "Místní úložiště nemůže zapisovat: {detail}. Tento zápis nic nezměnil; uvolněte na disku místo a spusťte příkaz znovu.",
        "error.not-writable":
            "Místní úložiště: {detail}. Nic se nezměnilo a soubor není poškozený (nespouštějte repair): umožněte do něj znovu zapisovat (disk připojený jen pro čtení, vlastník nebo práva souboru) a spusťte příkaz znovu.",
        "error.store-missing": "{detail}",
        "error.enrolment-link": "Řetězec pro registraci není platný: {detail}",
        "error.internal": "Neočekávaná chyba: {detail}",
        "error.file": "Soubor {file} nelze přečíst ani zapsat: {detail}",
        "error.one-resolution":
            "Zadejte právě jednu z voleb --pick, --value, --restore, --confirm-delete, --merge-into, "
            + "--not-duplicate, --accept, --move-to, --cancel, --reattach.",
        "error.map": "--map očekává SLOUPEC=POLE a POLE je jedno z: {fields}; \"{value}\" takové není.",
        "error.key-value": "--field očekává KLÍČ=HODNOTA; \"{value}\" neobsahuje =.",
        "error.move-to": "--move-to očekává dva časy, ZAČÁTEK a KONEC.",
        "sync.unreachable":
            "Server je nedostupný ({detail}). Místní práce je v bezpečí; odešle se při příští synchronizaci.",
        "init.unreachable":
            "Server je nedostupný ({detail}). Nic se nezměnilo; až bude dostupný, spusťte stejný příkaz znovu.",
        "sync.busy": "Server je přetížený ({detail}). Místní práce je v bezpečí; zkuste to za chvíli znovu.",
        "sync.revoked":
            "Správce toto zařízení zablokoval: server ho odmítá. Místní data v této replice zůstávají; "
            + "požádejte správce o nový registrační řetězec a zaregistrujte se znovu do nového adresáře --data. ({detail})",
        "sync.untrusted": "Server není ten, kterému tato replika důvěřuje: {detail}. Nic nebylo odesláno.",
        "sync.incompatible": "Server mluví jinou verzí protokolu ({detail}); aktualizujte replica-cli.",
        "sync.rejected": "Server požadavek odmítl: {detail}",
        "sync.stale": "Replika byla mimo déle, než server uchovává smazané záznamy ({detail}).",
        "sync.not-enrolled": "Tato replika není zaregistrovaná: {detail}",
        "sync.not-permitted": "Není povoleno: {detail}",
        "sync.not-found": "Na serveru nenalezeno: {detail}",
        "contact.added": "Kontakt {id} vytvořen.",
        "contact.updated": "Kontakt {id} upraven.",
        "contact.deleted": "Kontakt {id} smazán (vrátíte ho příkazem `replica-cli contact restore {id}`).",
        "contact.restored": "Kontakt {id} obnoven.",
        "contact.none": "Žádné kontakty.",
        "note.added": "Poznámka {id} přidána.",
        "note.updated": "Poznámka {id} upravena.",
        "note.deleted": "Poznámka {id} smazána.",
        "note.none": "Žádné poznámky.",
        "schedule.added": "Položka plánu {id} přidána.",
        "schedule.moved": "Položka plánu {id} přesunuta.",
        "schedule.cancelled": "Položka plánu {id} zrušena.",
        "schedule.done": "Položka plánu {id} označena jako hotová.",
        "schedule.none": "Žádné položky plánu.",
        "unchanged": "Není co měnit: {id} už tyto hodnoty má.",
        "sync.done":
            "Synchronizováno: {pushed|odeslána # změna|odeslány # změny|odesláno # změn}, přijato {pulled}. Otevřené konflikty: {conflicts}.",
        "sync.refused":
            "Server odmítl {count|# změnu; zůstává uložená|# změny; zůstávají uložené|# změn; zůstávají uložené} místně (viz `replica-cli status`).",
        "sync.epoch": "Server byl obnoven ze zálohy; tato replika mu poslala vše, co mu chybělo.",
        "sync.rebootstrapped":
            "Replika byla mimo déle, než server uchovává smazané záznamy: odeslala své změny a znovu načetla vše ze serveru.",
        "sync.image":
            "{count|# záznam přišel|# záznamy přišly|# záznamů přišlo} ze serveru v jednom souboru (jeho výchozím obrazu).",
        "repair.done":
            "Replika {replica} ({user}, tenant {tenant}) obnovena: zachováno {pending} neodeslaných a {refused} odmítnutých změn a {audit} záznamů historie; poškozený soubor je v {file}. Spusťte `replica-cli sync`: odešle vaše změny a vše ostatní stáhne znovu.",
        "repair.partial":
            "Část poškozeného souboru nešla přečíst: změny nebo záznamy historie uložené za poškozeným místem v novém souboru nejsou. Soubor {file} si ponechte pro správce.",
        "sync.watching": "Sleduji změny; zastavíte klávesami Ctrl-C.",
        "sync.reconnecting": "Spojení přerušeno ({detail}); další pokus za {seconds} s. Místní práce je v bezpečí.",
        "sync.stopped": "Sledování ukončeno.",
        "progress.sync": "synchronizace",
        "progress.import": "import",
        "conflicts.none": "Žádné otevřené konflikty.",
        "conflicts.resolved": "Konflikt {id} vyřešen. Synchronizací rozešlete řešení ostatním.",
        "conflicts.side": "Strana {number}",
        "conflicts.options": "Vyřešte pomocí: {options}",
        "import.rejected-line": "řádek {line}: {detail}",
        "import.summary": "Importováno kontaktů: {imported}, odmítnuto řádků: {rejected}.",
        "import.dry-run":
            "Zkušební běh: {imported|importoval by se # kontakt|importovaly by se # kontakty|importovalo by se # kontaktů}, odmítnuto řádků: {rejected}. Nic se nezměnilo.",
        "export.written": "{count|Zapsán # záznam|Zapsány # záznamy|Zapsáno # záznamů} do {file}.",
        "history.none": "Žádné zaznamenané změny.",
        "history.current": "Současné hodnoty a kdo je zapsal:",
        "history.trail": "Změny zaznamenané v této replice:",
        "history.action.write": "místní změna",
        "history.action.pull": "přijato synchronizací",
        "history.action.import": "importováno",
        "history.action.reissue": "odmítnutá změna vydaná znovu",
        "refused.none": "Replika {replica} nemá žádné odmítnuté změny.",
        "refused.header": "Odmítnuté změny repliky {replica} ({user}, tenant {tenant}): {count}",
        "refused.change": "#{sequence} {code}: {reason}",
        "refused.action.create": "vytvořit",
        "refused.action.edit": "upravit",
        "refused.action.delete": "smazat",
        "refused.action.restore": "obnovit",
        "refused.action.merge": "sloučit",
        "refused.kind.contact": "kontakt",
        "refused.kind.note": "poznámka",
        "refused.kind.schedule": "položka plánu",
        "refused.done":
            "Odmítnuté změny repliky {replica} ({changes}) vydány znovu jako {commands} nových změn; "
            + "odešlete je příkazem `replica-cli sync`.",
        "refused.dry-run":
            "Zkouška nanečisto: odmítnuté změny repliky {replica} ({changes}) by se vydaly znovu jako {commands} "
            + "nových změn. Nic se nezměnilo.",
        "refused.created": "#{sequence}: {kind} {old} je teď {new}",
        "refused.left-out": "Vynecháno, rozhodne člověk ({count}):",
        "refused.left-out-item": "#{sequence} {action} {kind} {id}: {reason}",
        "refused.already": "Vydáno znovu už dřívějším spuštěním, přeskočeno: {sequences}",
        "refused.nothing-new":
            "Nic nového: všechny odmítnuté změny repliky {replica} vydalo znovu už dřívější spuštění ({sequences}).",
        "error.reissue.not-a-replica": "{directory} není adresář repliky (není v něm úložiště repliky).",
        "error.reissue.same-replica":
            "{directory} je tato replika. Spusťte příkaz v NOVÉ replice a starou zadejte přes --from.",
        "error.reissue.other-tenant":
            "{directory} patří tenantu {detail}; jeho změny nelze vydat znovu v tomto.",
        "error.reissue.nothing-refused": "Replika v {directory} nemá žádné odmítnuté změny; není co vydat znovu.",
        "admin.not-permitted":
            "Není povoleno: `admin {command}` vyžaduje repliku s rolí {needed}; tato replika má roli {role}.",
        "admin.revoked": "Zařízení {id} zablokováno; jeho příští požadavek bude odmítnut.",
        "admin.enrolment": "Registrace pro {user} ({role}), platná do {expires}:",
        "admin.none": "Žádná zařízení.",
        "init.done": "Zaregistrováno jako {user} ({role}) v tenantu {tenant}; replika {replica}. "
            + "Data stáhnete příkazem `replica-cli sync`.",
        "init.need-link": "Zadejte registrační řetězec, nebo --server, --code a --fingerprint (případně --ca).",
        "init.system-trust": "Registrační řetězec nenese otisk certifikátu: replika důvěřuje každému certifikátu, "
            + "který pro jméno serveru vydaly autority systému. Chcete-li připnout vlastní certifikát serveru, "
            + "vyžádejte si řetězec se sha256=.",
        "status.replica": "Replika",
        "status.user": "Uživatel",
        "status.role": "Role",
        "status.tenant": "Tenant",
        "status.server": "Server",
        "status.last-sync": "Poslední synchronizace",
        "status.never": "nikdy",
        "status.pending": "Změny k odeslání",
        "status.refused": "Odmítnuté změny",
        "status.conflicts": "Otevřené konflikty",
        "status.clock-offset": "Odchylka hodin",
        "status.store-size": "Velikost úložiště",
        "column.id": "ID",
        "column.name": "JMÉNO",
        "column.company": "FIRMA",
        "column.owner": "VLASTNÍK",
        "column.status": "STAV",
        "column.when": "KDY",
        "column.author": "AUTOR",
        "column.outcome": "VÝSLEDEK",
        "column.text": "TEXT",
        "column.start": "ZAČÁTEK",
        "column.end": "KONEC",
        "column.title": "NÁZEV",
        "column.assignees": "PŘIŘAZENO",
        "column.kind": "DRUH",
        "column.field": "POLE",
        "column.user": "UŽIVATEL",
        "column.device": "ZAŘÍZENÍ",
        "column.action": "AKCE",
        "column.value": "HODNOTA",
        "column.role": "ROLE",
        "column.last-seen": "NAPOSLEDY",
        "column.lag": "POZADU",
        "column.revoked": "ZABLOKOVÁNO",
        "label.id": "ID",
        "label.name": "Jméno",
        "label.company": "Firma",
        "label.owner": "Vlastník",
        "label.status": "Stav",
        "label.phones": "Telefony",
        "label.emails": "E-maily",
        "label.tags": "Štítky",
        "label.fields": "Pole",
        "label.address": "Adresa",
        "label.title": "Funkce",
        "label.lifecycle": "Stav záznamu",
        "label.conflicts": "Pole v konfliktu",
        "label.notes": "Poznámky",
        "yes": "ano",
        "no": "ne",
    ]
}
