"""The provider-side wiring IT creates, printed by `relais relay setup microsoft|google` (docs/mail-flow.md)."""

from __future__ import annotations

from sqlmodel import Session, select

from service.directory.models import Employee
from signatures.relay.classify import STAMP_HEADER

CONNECTOR_OUT = "Relais signatures (to relay)"
CONNECTOR_IN = "Relais signatures (from relay)"
RULE = "Relais: sign outgoing mail"


def org_domains(session: Session, org_id: int) -> list[str]:
    emails = session.exec(
        select(Employee.email).where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
    ).all()
    return sorted({e.rpartition("@")[2].lower() for e in emails if "@" in e})


def _ps(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def microsoft_script(*, relay_host: str, domains: list[str], group: str | None = None) -> str:
    if group:
        scope = f"-FromMemberOf {_ps(group)}"
        scope_note = f"only members of {group} (pilot)"
    elif domains:
        scope = "-SenderDomainIs " + ",".join(_ps(d) for d in domains)
        scope_note = "senders of " + ", ".join(domains)
    else:
        scope = "-FromScope InOrganization"
        scope_note = "every sender inside the organisation"
    return f"""# Exchange Online PowerShell: route outgoing mail through the Relais signature relay.
# Run in a session opened with Connect-ExchangeOnline (Exchange administrator). Relay: {relay_host}
# The relay must present a certificate from a public CA whose subject (or SAN) is {relay_host}.

# 1. Outbound connector: Office 365 -> the relay, used only when the rule below redirects a message to it.
New-OutboundConnector -Name {_ps(CONNECTOR_OUT)} `
  -ConnectorType Partner `
  -IsTransportRuleScoped $true `
  -UseMXRecord $false `
  -SmartHosts {_ps(relay_host)} `
  -TlsSettings DomainValidation `
  -TlsDomain {_ps(relay_host)} `
  -Enabled $true

# 2. Inbound connector: the relay -> Office 365, recognised by the relay's TLS certificate. The relay hands
#    the signed message to <tenant>.mail.protection.outlook.com (RELAIS_RELAY_NEXT_HOP), and Exchange
#    delivers it and DKIM-signs it as usual.
New-InboundConnector -Name {_ps(CONNECTOR_IN)} `
  -ConnectorType OnPremises `
  -SenderDomains '*' `
  -RequireTls $true `
  -TlsSenderCertificateName {_ps(relay_host)} `
  -Enabled $true

# 3. Mail flow rule: {scope_note} -> the relay, except messages the relay already stamped
#    ({STAMP_HEADER}); that exception is what prevents a loop. Start with -Mode Audit or a pilot group
#    (relais relay setup microsoft --group pilot@yourdomain) and widen the scope when the pilot is happy.
New-TransportRule -Name {_ps(RULE)} `
  {scope} `
  -RouteMessageOutboundConnector {_ps(CONNECTOR_OUT)} `
  -ExceptIfHeaderMatchesMessageHeader {_ps(STAMP_HEADER)} `
  -ExceptIfHeaderMatchesPatterns '.' `
  -Priority 0 `
  -Mode Enforce

# On the relay host (environment):
#   RELAIS_RELAY_LISTEN=0.0.0.0:25
#   RELAIS_RELAY_NEXT_HOP=<tenant>.mail.protection.outlook.com:25   RELAIS_RELAY_NEXT_HOP_STARTTLS=true
#   RELAIS_RELAY_TLS_CERT_FILE=/etc/relais/{relay_host}.pem  RELAIS_RELAY_TLS_KEY_FILE=/etc/relais/{relay_host}.key
#   RELAIS_RELAY_REQUIRE_TLS=true
#   RELAIS_RELAY_ALLOWED_NETWORKS=<Exchange Online Protection's published outbound ranges, JSON list>
#   RELAIS_RELAY_TLS_CLIENT_CA_FILE=/etc/ssl/certs/ca-certificates.crt  (public CAs: Exchange's certificate)
#   RELAIS_RELAY_TLS_CLIENT_SUBJECTS=["mail.protection.outlook.com"]  (the name Exchange Online presents)
# Undo: Remove-TransportRule {_ps(RULE)}; Remove-InboundConnector {_ps(CONNECTOR_IN)};
#       Remove-OutboundConnector {_ps(CONNECTOR_OUT)}
"""


def google_steps(*, relay_host: str, domains: list[str], group: str | None = None) -> str:
    scope = f"the group {group} (pilot)" if group else "the organizational unit(s) to sign (start with a pilot OU)"
    domain_list = ", ".join(domains) or "your domains"
    return f"""Google Workspace: route outgoing Gmail through the Relais signature relay ({relay_host}).
Admin console (admin.google.com), signed in as a super administrator.

1. Add the relay as a mail route
   Apps > Google Workspace > Gmail > Hosts > ADD ROUTE
     Name: Relais relay
     Single host: {relay_host}   Port: 25 (or the port of RELAIS_RELAY_LISTEN)
     Options: [x] Require mail to be transmitted via a secure (TLS) connection
              [x] Require CA signed certificate   [x] Validate certificate hostname

2. Send outgoing mail to it, except what the relay already stamped
   Apps > Google Workspace > Gmail > Compliance > Content compliance > CONFIGURE
     Apply to: {scope}
     Email messages to affect: [x] Outbound  [x] Internal - sending
     Add expressions that describe the content you want to search for in each message:
       If ALL of the following match the message:
         Advanced content match  Location: Full headers  Match type: Not contains text  Content: X-Relais-Signed:
     If the above expressions match, do the following:
       Route: Change route > Relais relay
   (Sending routing or an Outbound gateway also work; both send every message, so keep the header
   exception somewhere the route is chosen, or the relay's output loops back to it.)

3. Let the relay hand the signed mail back to Gmail
   Apps > Google Workspace > Gmail > Routing > SMTP relay service > CONFIGURE
     Allowed senders: Only addresses in my domains ({domain_list})
     Authentication: [x] Only accept mail from the specified IP addresses: <the relay's public egress IPs>
     Encryption: [x] Require TLS encryption
   On the relay host:
     RELAIS_RELAY_NEXT_HOP=smtp-relay.gmail.com:587   RELAIS_RELAY_NEXT_HOP_STARTTLS=true
     RELAIS_RELAY_TLS_CERT_FILE / RELAIS_RELAY_TLS_KEY_FILE: a public-CA certificate for {relay_host}
     RELAIS_RELAY_REQUIRE_TLS=true
     RELAIS_RELAY_ALLOWED_NETWORKS=<Google's outbound mail ranges (the _spf.google.com netblocks), JSON list>
   The SMTP relay service limits an organisation to 4.6 million recipients per 24 hours and 319,444 per
   10 minutes: well above normal outgoing traffic, but count bulk senders that share it.

4. SPF and DKIM
   Mail still leaves through Gmail (smtp-relay.gmail.com), so "include:_spf.google.com" and Gmail's DKIM key
   keep working; nothing changes in DNS. Only if the relay delivered to recipients directly would its IPs need
   to join SPF, and it would have to DKIM-sign itself.

5. Pilot, then everyone
   Keep the compliance rule on the pilot group or OU for a few days; check a message's original (Show
   original: X-Relais-Signed: signed) and the relay's counters; then widen "Apply to".
"""


def setup_for(session: Session, settings, *, org_id: int | None, provider: str, relay_host: str | None = None,
              group: str | None = None) -> str:  # fmt: skip
    """The setup text of `provider` for this organisation, from the registry's relay target: what
    `relais relay setup`, GET /api/relay/setup/{provider} and the relay page all show."""
    from signatures.deploy.registry import TENANT_WIDE_TARGETS

    domains = settings.relay_domains or (org_domains(session, org_id) if org_id is not None else [])
    host = relay_host or settings.relay_hostname or "relay.example.com"
    return TENANT_WIDE_TARGETS["relay"].setup(provider, relay_host=host, domains=domains, group=group)
