"""Secret references: a service's secret field resolved at use time from where the user already keeps it."""
