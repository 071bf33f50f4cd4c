ALTER TABLE stripe_events ADD CONSTRAINT stripe_events_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE SET NULL;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
