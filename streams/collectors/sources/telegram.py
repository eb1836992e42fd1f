"""Telegram Desktop JSON exports (``result.json``): one envelope per message.

Exports are point-in-time snapshots that analysts drop into a folder again and again, so the
checkpoint is the last message id per chat: a newer export of the same chat only yields the
messages after it. Messages go to the forum topic with site ``telegram:<channel>``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from streams.collectors.config import SourceConfig, option_reader
from streams.collectors.feeds import FeedParseError
from streams.collectors.sources.base import Emission, PollContext, Source

log = logging.getLogger(__name__)

EXPORT_FILE_NAME = "result.json"
# Keys of a Telegram Desktop message that point at an exported (or skipped) attachment.
_FILE_KEYS = (("file", "file"), ("photo", "photo"), ("thumbnail", "thumbnail"))


@dataclass(frozen=True)
class TelegramOptions:
    """Validated options of a Telegram export source."""

    path: Path
    watch: bool
    settle_seconds: float
    include_service_messages: bool
    batch_size: int
    utc_offset: timezone
    max_export_bytes: int


def _parse_offset(text: str) -> timezone | None:
    sign = 1 if text[0] == "+" else -1 if text[0] == "-" else 0
    parts = text[1:].split(":")
    if not sign or len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return timezone(sign * timedelta(hours=int(parts[0]), minutes=int(parts[1])))


def flatten_text(value: Any) -> str:
    """Join Telegram's rich-text list (strings and ``{type, text}`` parts) into plain text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def iter_chats(document: Any) -> Iterator[dict[str, Any]]:
    """Yield chats of a single-chat export or of a full account export (``chats.list``)."""
    if not isinstance(document, dict):
        raise FeedParseError("export is not a JSON object")
    if isinstance(document.get("messages"), list):
        yield document
        return
    found = False
    for section in ("chats", "left_chats"):
        chats = document.get(section)
        if isinstance(chats, dict) and isinstance(chats.get("list"), list):
            for chat in chats["list"]:
                if isinstance(chat, dict) and isinstance(chat.get("messages"), list):
                    found = True
                    yield chat
    if not found:
        raise FeedParseError("export has no 'messages' and no 'chats.list'")


def _files(message: dict[str, Any]) -> list[dict[str, Any]]:
    files = []
    for key, kind in _FILE_KEYS:
        path = message.get(key)
        if not isinstance(path, str):
            continue
        included = not path.startswith("(")  # "(File not included. Change data exporting...)"
        size = message.get(f"{key}_file_size") if key != "file" else message.get("file_size")
        files.append(
            {
                "kind": message.get("media_type", kind) if key == "file" else kind,
                "path": path if included else None,
                "name": message.get("file_name") if key == "file" else None,
                "size": size if isinstance(size, int) else None,
                "mime_type": message.get("mime_type") if key == "file" else None,
                "included": included,
            }
        )
    return files


def _extra_text(message: dict[str, Any]) -> list[str]:
    # Shared contacts and polls are where phone numbers and lists hide in chat exports.
    lines = []
    contact = message.get("contact_information")
    if isinstance(contact, dict):
        fields = [contact.get(k) for k in ("first_name", "last_name", "phone_number")]
        lines.append("Contact: " + " ".join(str(f) for f in fields if f))
    poll = message.get("poll")
    if isinstance(poll, dict):
        lines.append(f"Poll: {poll.get('question', '')}")
        for answer in poll.get("answers") or []:
            if isinstance(answer, dict):
                lines.append(f"- {answer.get('text', '')}")
    return lines


class TelegramExportSource(Source):
    """One export file, or a watched folder where exports are dropped."""

    source_type = "telegram_export"

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> TelegramOptions:
        """Validate export path, watch mode and the exporter's time zone."""
        reader = option_reader(config, where)
        offset_text = reader.text("export_utc_offset", "+07:00")
        offset = _parse_offset(offset_text)
        if offset is None:
            raise reader.fail("export_utc_offset", "must look like +07:00")
        options = TelegramOptions(
            path=config.resolve_path(reader.text("path", required=True)),
            watch=reader.flag("watch", False),
            settle_seconds=reader.number("settle_seconds", 5.0),
            include_service_messages=reader.flag("include_service_messages", False),
            batch_size=reader.integer("batch_size", 500, minimum=1),
            utc_offset=offset,
            max_export_bytes=reader.integer("max_export_bytes", 2 * 1024**3, minimum=1),
        )
        reader.check_unknown()
        return options

    def _export_files(self) -> list[Path]:
        options: TelegramOptions = self.options
        if options.path.is_dir():
            pattern = f"**/{EXPORT_FILE_NAME}" if options.watch else EXPORT_FILE_NAME
            return sorted(options.path.glob(pattern))
        return [options.path] if options.path.exists() else []

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Emit the messages of every new or changed export after each chat's checkpoint."""
        options: TelegramOptions = self.options
        files_state: dict[str, list[int]] = dict(state.get("files", {}))
        chats_state: dict[str, int] = dict(state.get("chats", {}))
        paths = self._export_files()
        if not paths and not options.watch:
            raise FileNotFoundError("export file not found")
        for path in paths:
            if ctx.stopping():
                return
            try:
                stat = path.stat()
            except OSError:
                continue
            signature = [stat.st_mtime_ns, stat.st_size]
            key = str(path)
            if files_state.get(key) == signature:
                continue
            if options.watch and time.time() - stat.st_mtime < options.settle_seconds:
                continue  # Telegram Desktop may still be writing it
            if stat.st_size > options.max_export_bytes:
                log.warning("source %s: export larger than max_export_bytes skipped", self.name)
                ctx.error("io")
                continue
            try:
                with open(path, "rb") as handle:
                    document = json.loads(handle.read().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("source %s: an export is not valid JSON yet; retrying", self.name)
                ctx.error("parse")
                continue
            for chat in iter_chats(document):
                for emission in self._chat_emissions(chat, chats_state, state):
                    if emission.state is not None:
                        chats_state = dict(emission.state["chats"])
                        state = emission.state
                    yield emission
            files_state[key] = signature
            state = {**state, "chats": chats_state, "files": files_state}
            yield Emission(state=state)
            files_state = dict(files_state)

    def _chat_emissions(
        self, chat: dict[str, Any], chats_state: dict[str, int], state: dict[str, Any]
    ) -> Iterator[Emission]:
        options: TelegramOptions = self.options
        chat_id = str(chat.get("id", chat.get("name", "unknown")))
        chat_name = str(chat.get("name") or chat_id)
        last_id = chats_state.get(chat_id, 0)
        messages = [
            m
            for m in chat["messages"]
            if isinstance(m, dict) and isinstance(m.get("id"), int) and m["id"] > last_id
        ]
        messages.sort(key=lambda m: m["id"])
        batch = []
        for message in messages:
            envelope = self._message_envelope(chat, chat_id, chat_name, message)
            if envelope is not None:
                batch.append(envelope)
            last_id = message["id"]
            if len(batch) >= options.batch_size:
                chats_state = {**chats_state, chat_id: last_id}
                yield Emission(envelopes=batch, state={**state, "chats": chats_state})
                batch = []
        if chats_state.get(chat_id, 0) != last_id:
            chats_state = {**chats_state, chat_id: last_id}
            yield Emission(envelopes=batch, state={**state, "chats": chats_state})

    def _published(self, message: dict[str, Any]) -> str | None:
        unix = message.get("date_unixtime")
        if isinstance(unix, str) and unix.isdigit():
            return datetime.fromtimestamp(int(unix), tz=timezone.utc).isoformat()
        date = message.get("date")
        if isinstance(date, str):
            try:
                parsed = datetime.fromisoformat(date)
            except ValueError:
                return None
            if parsed.tzinfo is None:
                # Telegram Desktop writes the exporting machine's local time without offset.
                parsed = parsed.replace(tzinfo=self.options.utc_offset)
            return parsed.isoformat()
        return None

    def _message_envelope(
        self, chat: dict[str, Any], chat_id: str, chat_name: str, message: dict[str, Any]
    ) -> Any:
        options: TelegramOptions = self.options
        service = message.get("type") == "service"
        if service and not options.include_service_messages:
            return None
        text = flatten_text(message.get("text"))
        extra = _extra_text(message)
        content = "\n".join(part for part in [text, *extra] if part)
        meta: dict[str, Any] = {
            "chat_id": chat_id,
            "chat_type": chat.get("type"),
            "message_id": message["id"],
            "message_type": message.get("type"),
            "files": _files(message),
        }
        for key in ("from_id", "reply_to_message_id", "forwarded_from", "edited", "via_bot"):
            if message.get(key) is not None:
                meta[key] = message[key]
        author = message.get("from") if not service else message.get("actor")
        return self.envelope(
            item_id=f"telegram:{chat_id}:{message['id']}",
            content=content,
            url=None,
            author=author if isinstance(author, str) else None,
            title=chat_name,
            published_at=self._published(message),
            meta=meta,
            site=f"telegram:{chat_name}",
        )
