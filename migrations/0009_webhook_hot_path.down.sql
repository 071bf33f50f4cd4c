DROP FUNCTION IF EXISTS webhook_intent_succeeded(text, text, text, boolean, timestamptz, jsonb, text, uuid, bigint, text, text);
DROP FUNCTION IF EXISTS mark_donation_succeeded(uuid, timestamptz, text, text);
ALTER TABLE stripe_events ADD CONSTRAINT stripe_events_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE SET NULL;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
