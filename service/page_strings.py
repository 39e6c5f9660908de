"""Strings the pages translate at run time (`{{ _(value) }}`) that no template spells out: navigation, roles,
states, outcomes, toasts, error titles and form errors. Listed here so `make translations-extract` finds them."""


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    return message


STRINGS = (
    # navigation and roles
    N_("Communications"), N_("IT"), N_("Administration"), N_("Administrator"), N_("Dashboard"), N_("Campaigns"),
    N_("Newsletter"), N_("Analytics"), N_("Connections"), N_("Directory"), N_("Templates"), N_("Deployments"),
    N_("Users"), N_("API keys"), N_("admin"), N_("comms"), N_("it"),
    # states and outcomes
    N_("draft"), N_("scheduled"), N_("active"), N_("paused"), N_("ended"), N_("sending"), N_("sent"),
    N_("queued"), N_("running"), N_("done"), N_("failed"), N_("added"), N_("changed"), N_("applied"),
    N_("unchanged"), N_("skipped"), N_("pending"), N_("writing"), N_("disabled"), N_("revoked"), N_("created"),
    N_("updated"), N_("reactivated"), N_("deactivated"), N_("error"), N_("warning"), N_("info"), N_("company"),
    N_("sector"),
    # analytics groupings and channels
    N_("campaign"), N_("channel"), N_("department"), N_("office"), N_("employee"), N_("article"), N_("variant"),
    N_("day"), N_("Signature banner"), N_("Signature links"), N_("Share buttons"), N_("Shared posts"),
    # toasts
    N_("You are signed out."), N_("Your password is changed. Sign in with it."), N_("Saved."), N_("Created."),
    N_("Deleted."), N_("Scheduled."), N_("Started."),
    # error pages
    N_("This form has expired"), N_("Reload the page and try again."), N_("Not for your role"),
    N_("Your role does not include this page. Ask an administrator."), N_("This import has expired"),
    N_("Upload the file again to see a new dry run."), N_("No such user"),
    N_("They may have been removed, or belong to another organisation."), N_("That is you"),
    N_("Ask another administrator to change your own role or access."), N_("No such key"),
    N_("It may belong to another organisation."), N_("No such deployment"),
    N_("It may belong to another organisation, or the link is wrong."), N_("Choose a provider"),
    N_("Pick Microsoft 365, Google Workspace or the file export."), N_("No such mailbox"), N_("Nothing to retry"),
    N_("This deployment has no failed or unattempted mailbox."), N_("No such template"),
    N_("This link does not exist"), N_("Check the address in the newsletter you received."),
    N_("The deployment did not start"), N_("The import did not apply"), N_("Page not found"),
    # form errors
    N_("That email and password do not match an account."), N_("This form has expired. Sign in again."),
    N_("This form has expired. Try again."), N_("Too many failed attempts. Wait 15 minutes, or reset your password."),
    N_("Choose a CSV file (UTF-8, a header row, an 'email' column)."), N_("This file is over 20 MB; split it."),
    N_("Paste the article's address (https://...)."),
    N_("Say what the banner shows: mail clients that block images show this text."),
    N_("Choose or upload a banner."), N_("This is not your current password."),
    N_("Name the key after who or what uses it."), N_("Choose a role."),
    N_("Enter the email address you sign in with."), N_("Use at least 12 characters."),
    N_("Use at most 256 characters."), N_("Remove the spaces at the start or the end."),
    N_("The two passwords differ."), N_("Choose another password."), N_("String should have at least 1 character"),
    N_("Field required"),
)  # fmt: skip
