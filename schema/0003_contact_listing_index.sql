-- Kraliki Sync replica store, schema 3: the contact list read from one index.

-- The contact list (active contacts by name, then ID) scanned contacts_by_name and looked each
-- contact up in the table for the other listed columns: one B-tree search per contact, most of
-- the time of listing 100,000 contacts. This index holds the listed columns in listing order, so
-- the list is a single scan of it; it replaces contacts_by_name (a prefix of it).
DROP INDEX contacts_by_name;
CREATE INDEX contacts_listing ON contacts (name COLLATE NOCASE, id, company, owner, status, lifecycle, has_conflict);
