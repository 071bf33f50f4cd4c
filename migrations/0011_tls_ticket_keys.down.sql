DROP TABLE tls_ticket_keys;
