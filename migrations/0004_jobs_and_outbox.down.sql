DROP TABLE reports;
DROP TABLE email_outbox;
DROP TABLE cron_runs;
DROP TABLE jobs;
