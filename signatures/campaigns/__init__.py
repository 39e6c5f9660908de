"""Banner campaigns: uploads, audiences, rotation and the banner each signature carries."""
