-- linkgate schema version 3: change counters for what nodes keep in memory. Every write to
-- users or keys adds one to its counter; a node reads the counters with each grant (the same
-- query), and drops what it cached when one moved. So a node caches users' generations and the
-- token keys, yet sees another node's change as soon as it has committed.
CREATE TABLE linkgate.epochs (
    id integer PRIMARY KEY CHECK (id = 1),
    users bigint NOT NULL DEFAULT 0,
    keys bigint NOT NULL DEFAULT 0
);
INSERT INTO linkgate.epochs (id) VALUES (1);
