-- linkgate schema version 1: one table per store tree. Keys and values are linkgate's own
-- record encodings (opaque to SQL: change data with the linkgate CLI, never by hand).
CREATE SCHEMA IF NOT EXISTS linkgate;

CREATE TABLE linkgate.schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE linkgate.users (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.codes (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.grants (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.tokens (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.throttle (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.keys (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.denied (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.invites (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.sessions (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.grant_activity (key bytea PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE linkgate.events (key bytea PRIMARY KEY, value bytea NOT NULL);
