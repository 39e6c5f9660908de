"""The advocacy programme that comms runs around the portal: the social-media charter (versioned, co-written,
accepted before sharing), curated content from feeds, the share center, leaders first, contests and recognition."""
