"""Mail-flow signatures: an SMTP relay that stamps each outgoing message with its sender's signature.

Exchange Online (outbound connector + mail flow rule) or Gmail (outbound gateway / sending routing) route
outgoing mail through `relais relay`; it signs the message and hands it to the next hop before it answers the
end of DATA, so a failure becomes a 4xx and the provider keeps the message (docs/mail-flow.md).

Modules: `mime` (byte offsets of the MIME parts), `classify` (what must pass untouched), `placement` (where
the signature goes in a part), `stamp` (one message in, one message out), `senders` (address → employee and
their rendered signature), `server` (the aiosmtpd proxy), `setup` (the admin's wiring text).
"""
