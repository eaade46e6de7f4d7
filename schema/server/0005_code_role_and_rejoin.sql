-- Kraliki Sync server store, schema 5: what an enrolment code grants, fixed when it is issued.
-- Released migrations are never edited; later changes go in new numbered files.

-- The role the code gives its user when it is used (issuing a code no longer changes the role
-- of a user who already exists; NULL for codes issued before this schema: the user's role).
ALTER TABLE enrolment_code ADD COLUMN role TEXT;
-- The replica ID an admin named for a rejoin (disaster recovery); a rejoin must claim exactly it,
-- and a code that names one is for that rejoin only. NULL: an ordinary enrolment.
ALTER TABLE enrolment_code ADD COLUMN rejoin_replica TEXT;
-- When an admin withdrew the code before it was used.
ALTER TABLE enrolment_code ADD COLUMN revoked_ms INTEGER;
