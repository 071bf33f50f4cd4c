DROP TABLE stripe_events;
DROP TABLE donations;
DROP TABLE recurring_donations;
DROP TABLE donors;
