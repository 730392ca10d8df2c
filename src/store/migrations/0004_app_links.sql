-- linkgate schema version 4: Alexa app-to-app links (store/app_links.rs), one row per customer and
-- client: what the Alexa skill enablement API needs to report and end the link later.
CREATE TABLE linkgate.app_links (key bytea PRIMARY KEY, value bytea NOT NULL);
