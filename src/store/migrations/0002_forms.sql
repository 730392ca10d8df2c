-- linkgate schema version 2: authorization forms spent (oauth::pending), shared by the nodes so a
-- sign-in may move between them and each form is still used once.
CREATE TABLE linkgate.forms (key bytea PRIMARY KEY, value bytea NOT NULL);
