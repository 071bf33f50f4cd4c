DROP TABLE acme_challenges;
DROP TABLE certificates;
DROP TABLE acme_accounts;
