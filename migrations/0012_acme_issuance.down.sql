DROP TRIGGER IF EXISTS tenant_domains_verified_update ON tenant_domains;
DROP TRIGGER IF EXISTS tenant_domains_verified_insert ON tenant_domains;
DROP FUNCTION IF EXISTS notify_domain_verified();
DROP TABLE IF EXISTS acme_orders;
DROP TABLE IF EXISTS acme_names;
