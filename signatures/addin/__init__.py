"""The Outlook event-based add-in: manifest, launch-event script, and the signed-in user's current signature."""
