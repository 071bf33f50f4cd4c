-- Demo data for the local stack: idempotent, safe to run after every start.
INSERT INTO tenants (slug, name, status, plan_id, settings)
VALUES ('grace', 'Grace Community Church', 'active', 'growth',
        '{"branding": {"primary_color": "#2f5d8a", "template": "classic"},
          "donations": {"currencies": ["usd"], "min_minor": 100, "max_minor": 1000000,
                        "funds": ["general", "missions", "building"]}}'),
       ('hope', 'Hope Chapel', 'trial', 'starter', '{}')
ON CONFLICT (slug) DO NOTHING;

INSERT INTO tenant_domains (tenant_id, domain, status, verification_token, verified_at)
SELECT id, 'grace-church.localhost', 'active', 'demo-token-grace', now()
FROM tenants WHERE slug = 'grace'
ON CONFLICT (domain) WHERE status <> 'removed' DO NOTHING;
