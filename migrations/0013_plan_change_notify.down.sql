DROP TRIGGER plans_notify ON plans;
DROP FUNCTION notify_plan_change();
