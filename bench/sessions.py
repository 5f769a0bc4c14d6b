"""A Streamlit session without a browser: Streamlit's own websocket protocol, spoken from Python.

Thirty Chromium tabs would take the two cores a workshop server is measured on; one of these
sessions costs the server exactly what a tab costs it (the same websocket, the same script runs,
the same fragment polls) and costs the client next to nothing. What it does not do is draw:
figures arrive as protobuf messages and are read, not rendered.

The protocol, as `streamlit/web/server/starlette/starlette_websocket.py` and the frontend speak it:
the client opens ``/_stcore/stream`` (subprotocol ``streamlit``, an Origin of the server itself),
and sends `BackMsg.rerun_script` with the page's name (its URL path) and, once the server has
said it in its `navigation` message, the page's script hash (without it, an `st.rerun()` in a fragment
reruns the main page, not this one), the query string and the widget states;
the server answers with `ForwardMsg`s: `new_session` at the start of every full script run,
`delta`s (one per element, at a `delta_path`), `auto_rerun` for a fragment with `run_every`
(the *browser* reruns it on that interval; here, a task does), and `script_finished`.
A button click is a rerun whose widget states hold the button's id with `trigger_value` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

STREAM = "/_stcore/stream"


@dataclass
class Element:
    """One element of the page as last drawn: its kind ('button', 'metric', ...) and its message."""

    kind: str
    message: object

    @property
    def label(self) -> str:
        return getattr(self.message, "label", "")

    @property
    def text(self) -> str:
        """What a reader sees of it: a label and a body, where the element has them."""
        return " ".join(str(getattr(self.message, name, "")) for name in ("label", "body")).strip()


@dataclass
class Page:
    """The page as the latest script runs drew it: elements by their delta path."""

    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)

    def find(self, kind: str, label: str) -> Element | None:
        return next((e for e in self.elements.values() if e.kind == kind and e.label == label), None)

    def texts(self, kind: str | None = None) -> list[str]:
        return [e.text for e in self.elements.values() if kind is None or e.kind == kind]


class Session:
    """One Streamlit session over a websocket, as one browser tab holds it.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8501``.
        cookies: the browser's cookies for the site (the app's workspace key), sent on connect.
    """

    def __init__(self, url: str, cookies: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.cookies = cookies or {}
        self.page = Page()
        self.page_name = ""
        self.query = ""
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._timers: dict[str, asyncio.Task] = {}  # fragment id -> its auto-rerun task
        self._page_hash = ""  # the current page's, from the server's navigation message
        self._drawn: dict[tuple[int, ...], Element] = {}  # what the script run in progress has drawn
        self._registered: set[str] = set()  # the fragments it asked to rerun
        self._finished = asyncio.Event()  # set by every script_finished (full runs and fragments)
        self._runs = 0  # full script runs finished so far
        self.closed: str | None = None  # why the websocket ended, once it has

    async def connect(self) -> None:
        import websockets

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else None
        self._ws = await websockets.connect(
            self.url.replace("http", "ws", 1) + STREAM,
            subprotocols=["streamlit"],
            origin=self.url,
            additional_headers=headers,
            max_size=None,
            open_timeout=60,
            ping_interval=None,  # the server pings; a client ping lost in a busy server's queue would close it
        )
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Closes the websocket as closing a tab does: the server ends the session."""
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def open(self, page_name: str, query: str = "", timeout: float = 120) -> None:
        """Opens a page (as typing its address does) and waits for its script run to finish."""
        self.page_name, self.query, self._page_hash = page_name, query, ""
        await self._rerun_and_wait(None, timeout)

    async def click(self, label: str) -> None:
        """Clicks the button labelled `label` (sends the rerun; does not wait for it)."""
        button = self.page.find("button", label)
        if button is None:
            raise LookupError(f"no button {label!r} on page {self.page_name!r}: {self.page.texts('button')}")
        if getattr(button.message, "disabled", False):
            raise LookupError(f"the button {label!r} is disabled")
        await self._send(trigger=button.message.id)

    async def choose(self, label: str, options: list[str], timeout: float = 300) -> None:
        """Sets the multiselect labelled `label` to `options` (their labels, as a browser sends them) and
        waits for the script run that follows."""
        await self._set("multiselect", label, lambda state: state.string_array_value.data.extend(options), timeout)

    async def fill(self, label: str, text: str, timeout: float = 300) -> None:
        """Types `text` into the text input labelled `label` (as leaving the field does) and waits for the
        script run that follows."""
        await self._set("text_input", label, lambda state: setattr(state, "string_value", text), timeout)

    async def enter(self, label: str, number: int, timeout: float = 300) -> None:
        """Enters the whole `number` into the number input labelled `label` and waits for the script run."""
        await self._set("number_input", label, lambda state: setattr(state, "int_value", number), timeout)

    async def _set(self, kind: str, label: str, value: Callable[[WidgetState], None], timeout: float) -> None:
        widget = self.page.find(kind, label)
        if widget is None:
            raise LookupError(f"no {kind} {label!r} on page {self.page_name!r}")
        await self._rerun_and_wait(None, timeout, (widget.message.id, value))

    async def wait_until(self, seen: Callable[[Page], bool], timeout: float) -> None:
        """Waits until a finished full script run has drawn a page for which `seen` is true.

        Raises:
            TimeoutError: after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while not seen(self.page):
            self._check_open()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.page_name!r} did not show what was awaited within {timeout:.0f} s")
            self._finished.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), left)

    # ------------------------------------------------------------------ the protocol
    async def _rerun_and_wait(
        self, trigger: str | None, timeout: float, widget: tuple[str, Callable[[WidgetState], None]] | None = None
    ) -> None:
        before = self._runs
        await self._send(trigger=trigger, widget=widget)
        deadline = time.monotonic() + timeout
        while self._runs == before:
            self._check_open()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the script run of {self.page_name!r} did not finish within {timeout:.0f} s")
            self._finished.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), left)

    def _check_open(self) -> None:
        if self.closed is not None:
            raise ConnectionError(f"the session of {self.page_name!r} ended: {self.closed}")

    async def _send(
        self,
        trigger: str | None = None,
        fragment: str | None = None,
        widget: tuple[str, Callable[[WidgetState], None]] | None = None,
    ) -> None:
        """One rerun request: a click (`trigger`, a button's id), a fragment's poll, or one widget's new value
        (its id, and what sets the value on its `WidgetState`)."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page_name
        if self._page_hash:
            state.page_script_hash = self._page_hash
        if trigger is not None:
            click = state.widget_states.widgets.add()
            click.id, click.trigger_value = trigger, True
        if widget is not None:
            value = state.widget_states.widgets.add()
            value.id = widget[0]
            widget[1](value)
        if fragment is not None:
            state.fragment_id, state.is_auto_rerun = fragment, True
        if self._ws is None:
            raise RuntimeError("connect() first")
        await self._ws.send(msg.SerializeToString())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._take(msg)
        except Exception as err:  # the waiters see it instead of waiting for messages that never come
            self.closed = f"{type(err).__name__}: {err}"
            self._finished.set()
            raise
        self.closed = "the server closed the websocket"
        self._finished.set()

    def _take(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "navigation":
            self._page_hash = msg.navigation.page_script_hash
        elif kind == "new_session":  # a script run starts (a full one, or a fragment's: which, its end says)
            self._drawn, self._registered = {}, set()
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            which = element.WhichOneof("type") or "empty"
            self._drawn[tuple(msg.metadata.delta_path)] = Element(which, getattr(element, which, None))
        elif kind == "auto_rerun":
            fragment, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            self._registered.add(fragment)
            if fragment not in self._timers:
                self._timers[fragment] = asyncio.create_task(self._poll(fragment, interval))
        elif kind == "stop_auto_rerun":
            for fragment in msg.stop_auto_rerun.fragment_ids:
                self._stop_timer(fragment)
        elif kind == "script_finished":
            status = msg.script_finished
            if status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                self.page.elements.update(self._drawn)
            elif status == ForwardMsg.FINISHED_SUCCESSFULLY:
                # A full run draws the whole page: what it did not draw is gone, and so are the
                # fragments it did not register again.
                self.page = Page(self._drawn)
                for fragment in set(self._timers) - self._registered:
                    self._stop_timer(fragment)
                self._runs += 1
            self._drawn = {}
            self._finished.set()

    def _stop_timer(self, fragment: str) -> None:
        task = self._timers.pop(fragment, None)
        if task is not None:
            task.cancel()

    async def _poll(self, fragment: str, interval: float) -> None:
        """What the browser does for a fragment with `run_every`: reruns it every `interval` seconds."""
        while True:
            await asyncio.sleep(interval)
            await self._send(fragment=fragment)
