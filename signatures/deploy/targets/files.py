"""A folder export target: one `<address>.html` (+ `.txt`, reply signatures) per mailbox address.

For admins who deploy by other means (a script, a transport rule, a third-party tool), and the
reference implementation the contract tests hold every provider to.
"""

from pathlib import Path

from signatures.deploy.targets.base import AddressResult, MailboxSignature, Outcome, WriteResult
from signatures.export import safe_name, write_atomic


class FileTarget:
    provider = "file"
    concurrency = 4
    writes_per_second: float | None = None

    SUFFIXES = (".html", ".txt", ".reply.html", ".reply.txt")

    def __init__(self, folder: Path, *, keep: set[str] | None = None, prune: bool = False):
        """`keep`: every address of an active employee; files of other addresses (people who left) are
        removed before writing when `prune` (a dry run only says so). None: never remove anything."""
        self.folder = Path(folder)
        self.keep = None if keep is None else {safe_name(a) for a in keep}
        self.prune = prune

    def check(self) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        stale = self.stale()
        if not stale:
            return []
        names = ", ".join(stale[:10]) + (" …" if len(stale) > 10 else "")
        if not self.prune:
            return [f"Would remove the files of {len(stale)} address(es) no active employee has: {names}."]
        for name in stale:
            for suffix in self.SUFFIXES:
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)
        return [f"Removed the files of {len(stale)} address(es) no active employee has: {names}."]

    def stale(self) -> list[str]:
        """File names (safe addresses) in the folder that belong to no active employee."""
        if self.keep is None:
            return []
        names = {p.name.removesuffix(".html") for p in self.folder.glob("*.html") if not p.name.endswith(".reply.html")}
        return sorted(n for n in names if n not in self.keep)

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
