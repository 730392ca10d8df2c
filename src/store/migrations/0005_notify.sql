-- linkgate schema version 5: nodes answer token checks from memory (store/postgres_memory.rs) and
-- learn of every change that can make what they keep wrong by a notification on the channel
-- linkgate_changes, sent at commit by these triggers whichever node (or the CLI) wrote: a grant
-- deleted (revocation, unlink, reuse detection, sweep), an access token denied (RFC 7009), the
-- change counters moved (users, keys). Grants written (a new link, a rotation) are not
-- notified: a node never keeps a no, and every refresh that writes reads its grant from the
-- database under its row lock. A notification holds a cluster-wide lock through its commit, so
-- only these rare writes send one; rotations and code exchanges stay free of it.
CREATE FUNCTION linkgate.notify_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('linkgate_changes', TG_ARGV[0] || encode(
        CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END, 'hex'));
    RETURN NULL;
END
$$;

CREATE FUNCTION linkgate.notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('linkgate_changes', TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE TRIGGER notify_deleted AFTER DELETE ON linkgate.grants
    FOR EACH ROW EXECUTE FUNCTION linkgate.notify_row('g:');
CREATE TRIGGER notify_denied AFTER INSERT OR UPDATE ON linkgate.denied
    FOR EACH ROW EXECUTE FUNCTION linkgate.notify_row('d:');
CREATE TRIGGER notify_epochs AFTER UPDATE ON linkgate.epochs
    FOR EACH STATEMENT EXECUTE FUNCTION linkgate.notify_all('e');
CREATE TRIGGER notify_emptied AFTER TRUNCATE ON linkgate.grants
    FOR EACH STATEMENT EXECUTE FUNCTION linkgate.notify_all('*');
CREATE TRIGGER notify_emptied AFTER TRUNCATE ON linkgate.denied
    FOR EACH STATEMENT EXECUTE FUNCTION linkgate.notify_all('*');
