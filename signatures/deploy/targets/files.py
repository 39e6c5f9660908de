"""A folder export target: one `<address>.html` (+ `.txt`, reply variants) per mailbox address.

For admins who deploy by other means (a script, a transport rule, a third-party tool), and the
reference implementation the contract tests hold every provider to.
"""

from pathlib import Path

from signatures.deploy.targets.base import AddressResult, MailboxSignature, Outcome, WriteResult
from signatures.export import safe_name, write_atomic


class FileTarget:
    provider = "file"
    concurrency = 4
    writes_per_second = None

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def check(self) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return []

    def _path(self, address: str, suffix: str) -> Path:
        return self.folder / f"{safe_name(address)}{suffix}"

    def current(self, mailbox: str) -> dict[str, str | None]:
        path = self._path(mailbox, ".html")
        return {mailbox: path.read_text(encoding="utf-8") if path.exists() else None}

    def write(self, signature: MailboxSignature) -> WriteResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        result = WriteResult()
        for address in signature.addresses:
            files = {
                ".html": signature.html,
                ".txt": signature.text,
                ".reply.html": signature.reply_html,
                ".reply.txt": signature.reply_text,
            }
            if all(
                self._path(address, s).exists() and self._path(address, s).read_text(encoding="utf-8") == body
                for s, body in files.items()
            ):
                result.results.append(AddressResult(address, Outcome.unchanged, "already up to date"))
                continue
            for suffix, body in files.items():
                write_atomic(self._path(address, suffix), body)
            result.writes += 1
            result.results.append(AddressResult(address, Outcome.applied))
        return result
