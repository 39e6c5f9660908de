"""How to install a copied signature in each mail client, and which of them IT fills automatically.

A Google deployment writes the Gmail signature of the account (the web's, which the Gmail apps do not use); a
Microsoft one writes the mailbox's signature that Outlook on the web and the new Outlook read. Desktop and mobile
apps keep their own, so their guides stay useful even when IT deploys.
"""

from dataclasses import dataclass

from service.page_strings import N_

COPY = N_("Press “Copy signature” on this page.")


@dataclass(frozen=True)
class Guide:
    key: str
    name: str
    steps: tuple[str, ...]
    note: str | None = None
    filled_by: str | None = None  # the mail app family a deployment fills for this client ("Gmail", "Outlook")
    installed: bool = False  # IT installed it for this employee: nothing to do


GUIDES = (
    Guide(
        "outlook-windows",
        N_("Outlook for Windows"),
        (
            COPY,
            N_("In Outlook, choose File, then Options, then Mail, then Signatures…"),
            N_("Press New, name the signature and paste it into the editing box (Ctrl+V)."),
            N_("Under “Choose default signature”, pick it for “New messages” and for “Replies/forwards”, then OK."),
        ),
        N_(
            "If your organisation turned on roaming signatures, the one IT installs in Outlook on the web can appear "
            "here by itself."
        ),
    ),
    Guide(
        "outlook-mac",
        N_("Outlook for Mac"),
        (
            COPY,
            N_("In Outlook, choose Outlook, then Settings…, then Signatures."),
            N_("Press +, name the signature and paste it into the editor (Cmd+V); close the window to save it."),
            N_(
                "Under “Choose default signatures”, pick your account, then the signature for new messages and for "
                "replies and forwards."
            ),
        ),
    ),
    Guide(
        "outlook-web",
        N_("Outlook on the web and the new Outlook"),
        (
            COPY,
            N_("Open Settings (the gear), then Account, then Signatures."),
            N_("Press “+ New signature”, name it and paste it into the editor."),
            N_(
                "Under “Select default signatures”, choose it for new messages and for replies and forwards, then Save."
            ),
        ),
        filled_by="Outlook",
    ),
    Guide(
        "outlook-mobile",
        N_("Outlook for iOS and Android"),
        (
            N_("In the app, tap your account picture, then the Settings gear."),
            N_("Tap Signature, clear the text that is there and paste your signature."),
        ),
        N_(
            "The app keeps a simple signature: images and layout may not survive. It is used only for mail sent "
            "from the app."
        ),
    ),
    Guide(
        "gmail-web",
        N_("Gmail on the web"),
        (
            COPY,
            N_("Open Settings (the gear), then “See all settings”, and stay on the General tab."),
            N_("Under Signature, press “Create new”, name it and paste it into the box."),
            N_(
                "Under “Signature defaults”, pick it for new emails and for replies and forwards, then press “Save "
                "Changes” at the bottom of the page."
            ),
        ),
        filled_by="Gmail",
    ),
    Guide(
        "gmail-mobile",
        N_("Gmail on Android and iOS"),
        (
            N_("In the app, open the menu, then Settings, then your account."),
            N_(
                "On Android tap “Mobile signature”; on iPhone and iPad tap “Signature settings” and turn on “Mobile "
                "signature”."
            ),
            N_("Paste your signature and confirm."),
        ),
        N_("The app's signature is plain text, and is used only for mail sent from the app."),
    ),
    Guide(
        "apple-mac",
        N_("Apple Mail on macOS"),
        (
            COPY,
            N_("In Mail, choose Mail, then Settings…, then Signatures."),
            N_("Select your account, press +, name the signature and untick “Always match my default message font”."),
            N_("Paste the signature into the right-hand pane, then choose it in the “Choose signature” menu."),
        ),
    ),
    Guide(
        "apple-ios",
        N_("Apple Mail on iPhone and iPad"),
        (
            N_("Open this page on the iPhone or iPad and press “Copy signature”."),
            N_("In the Settings app, open Apps, then Mail, then Signature (before iOS 18: Settings, then Mail)."),
            N_("Clear the text that is there and paste your signature."),
        ),
        N_("iOS keeps links and simple formatting; the layout and images may change."),
    ),
)


def guides(installed_in: tuple[str, ...]) -> list[Guide]:
    """Every guide, those IT fills for this employee first and marked installed."""
    from dataclasses import replace

    marked = [replace(g, installed=g.filled_by in installed_in) for g in GUIDES]
    return sorted(marked, key=lambda g: not g.installed)
