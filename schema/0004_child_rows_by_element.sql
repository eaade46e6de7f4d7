-- Kraliki Sync replica store, schema 4: child rows kept in step element by element.
-- Released migrations are never edited; later changes go in new numbered files.

-- A change now inserts the phones, e-mails and tags it adds and deletes the ones it removes, each
-- by its primary key, instead of deleting all of an owner's rows and inserting them again. Nothing
-- looks these rows up by owner any more, so these indexes only cost a B-tree insert per row: four
-- of the thirteen a contact import made. (Schedule assignees keep theirs: moving an entry rewrites
-- its rows, whose key holds the start time.)
DROP INDEX contact_phones_by_contact;
DROP INDEX contact_emails_by_contact;
DROP INDEX contact_tags_by_contact;
DROP INDEX note_tags_by_note;
