"""One websocket client's link to one kernel, across the kernel's restarts and its client's reconnections.

The websocket handler makes a :class:`KernelBridge` per client session
(:mod:`gateway.http.resume`: a session whose websocket dropped keeps its bridge
for the client's return, and the bridge's frames are kept meanwhile).  The bridge
gives the client its own sockets to the kernel's pod (a
:class:`~gateway.http.podlink.PodLink`: own DEALER identities, so the kernel's
replies come back to this client only) and a share of the gateway's iopub
subscription to it, and relays in both directions without buffering: each
kernel message is written to the client's session as soon as it is read, each client
message sent to the kernel as soon as it is decoded.  Before relaying it
"nudges" the kernel until that subscription has heard it, as Jupyter Server
does (usually it has already), unless the kernel is busy and would not answer.

Restarts keep the websocket open: when the kernel service starts restarting
the kernel the bridge closes its sockets; client messages are held; when the
new pod answers the bridge connects to it, sends what it held, and tells the
client the kernel's state.  What the client hears meanwhile is what Jupyter
Server sends: ``restarting`` only when the kernel died and is being restarted
automatically (Jupyter Server's auto-restarter callback; JupyterLab then tells
its user the kernel "appears to have died"), nothing of the kind for a restart
a client asked for (``POST /api/kernels/{id}/restart``), and ``starting`` as
the new kernel starts, either way.  When the kernel dies for good the client
hears ``dead`` and the websocket is closed.

A session's next websocket (:meth:`KernelBridge.relink`) links the session to the pod again
under the session's identity (:func:`~gateway.http.podlink.client_identity`): another replica
may have taken the identity over meanwhile, and the kernel would route the session's replies
there.  The older link relays on until the kernel has answered on the new one, then closes.
While the session's client is away (:meth:`KernelBridge.client_away`), a link to a restarted
kernel's new pod takes an identity of its own: nothing the client asked is pending there, and
the session's identity may be serving the client on another replica.

The bridge's states, and which event moves it from one to the next, are
drawn in :mod:`gateway.http.bridgestate`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import zmq

from gateway.aio import OwnedTasks, cancel_and_wait
from gateway.kernels.kernel import AUTORESTARTING, BUSY, DEAD, IDLE, RESTARTING, STARTING, Kernel
from gateway.kernels.service import KernelService
from gateway.kernels.zmqreader import SocketClosed
from gateway.provisioner.connection import ConnectionInfo

from .bridgestate import ENDING, HOLDING, BridgeState, check_transition
from .podlink import PodLink, Write, client_identity
from .wsprotocol import Codec, FrameError, Incoming, status_parts

log = logging.getLogger("gateway.http.websocket")

MAX_HELD = 1000
"""Client messages held at most until the bridge relays (while the kernel restarts); more are dropped (and logged)."""
RETIRE_SECONDS = 10.0
"""How long a relinked session's older link relays at most while the kernel has not answered on the new one."""


class KernelBridge:
    """Relays one websocket client's messages to one kernel and back (see the module docstring).

    Every change of :attr:`state` goes through :meth:`_move`, which refuses a
    move :data:`~gateway.http.bridgestate.TRANSITIONS` does not allow.  The
    bridge's tasks (each connect) are held in one :class:`~gateway.aio.OwnedTasks`;
    while relaying, the link's sockets are read by callbacks, and closing the link
    ends them.
    """

    def __init__(self, service: KernelService, kernel: Kernel, codec: Codec, write: Write,
                 close_client: Callable[[], None], *, nudge_timeout: float, session_id: str = "") -> None:
        self.service = service
        self.kernel = kernel
        self.codec = codec
        self._write = write
        self._close_client = close_client
        self._nudge_timeout = nudge_timeout
        self._state = BridgeState.NEW
        self._link: PodLink | None = None  # set exactly while relaying
        self._tasks = OwnedTasks(f"websocket of kernel {kernel.id}")
        self._held: list[Incoming] = []
        self._session = str(uuid.uuid4())
        self._session_id = session_id
        """The client's ``session_id`` (empty: none), of which its sockets' identity is made."""
        self._away = False
        """Whether the session's client is away (its websocket dropped and the session is kept)."""
        self._retired: list[PodLink] = []
        """Older links of its own identity, relaying the replies to what they sent until the bridge stops relaying."""

    @property
    def state(self) -> BridgeState:
        return self._state

    @property
    def link(self) -> PodLink | None:
        """The link relaying now (``None`` unless relaying)."""
        return self._link

    # ------------------------------------------------------------------ called by the handler

    async def open(self) -> None:
        """The client's session began (the handler's ``open``): follow the kernel, connect unless it is starting.

        Returns once the bridge relays, waits for the kernel, or the kernel
        began restarting meanwhile.  A failure to make the sockets is raised
        (tornado then drops the connection).  The client's session
        (:mod:`gateway.http.resume`) counts it among the kernel's connections.
        """
        self.kernel.add_listener(self._on_state)
        if self.kernel.connection is None or self.kernel.state in (RESTARTING, AUTORESTARTING, STARTING):
            self._move(BridgeState.WAITING)
            return
        self._move(BridgeState.CONNECTING)
        connecting = self._tasks.spawn(self._connect(announce=False), "connect")
        await asyncio.wait({connecting})
        if not connecting.cancelled() and (error := connecting.exception()) is not None:
            raise error

    def close(self) -> None:
        """The client's session is over (its websocket closed and it is not kept, or it was dropped): undo :meth:`open`."""
        if self._state is BridgeState.CLOSED:
            return
        opened = self._state is not BridgeState.NEW
        self._move(BridgeState.CLOSED)
        if opened:
            self.kernel.remove_listener(self._on_state)

    def client_away(self) -> None:
        """The session's websocket dropped and the session is kept (called by :meth:`ClientSession.keep`)."""
        self._away = True

    def relink(self) -> None:
        """The session's next websocket came (the client came back, or took its session over): link the
        session to the pod again, under its identity, in case another replica took the identity over.

        Called by :meth:`gateway.http.resume.ClientSessions.join`.  Only a relaying bridge of a session
        with an identity (:func:`~gateway.http.podlink.client_identity`) relinks; one that is connecting
        or waiting makes a new link anyway.  An older link under the session's identity relays what the
        kernel routed to it until the kernel answers on the new one (at most :data:`RETIRE_SECONDS`),
        then closes; one of its own identity relays the replies to what it sent until the bridge stops
        relaying.
        """
        self._away = False
        older = self._link
        if self._state is not BridgeState.RELAYING or older is None:
            return
        identity = client_identity(older.connection, self._session_id, self.kernel.request.spec.language)
        if identity is None:
            return
        fresh = PodLink(older.feed, self.codec, self._write, identity=identity)
        older.leave_feed()  # and the new one takes it up: each iopub message reaches the client once
        fresh.relay()
        self._link = fresh
        if older.keyed_to_session:
            self._tasks.spawn(self._retire(older, fresh), "retire the older link")
        else:
            self._retired.append(older)

    async def _retire(self, older: PodLink, fresh: PodLink) -> None:
        """The task that closes a relinked session's older link once the kernel answered on ``fresh``.

        Cancelled (closing ``older`` all the same) when the bridge stops relaying.
        """
        try:
            async with asyncio.timeout(RETIRE_SECONDS):
                await fresh.confirm()
        except TimeoutError:
            log.info("kernel %s: no answer on a session's new sockets in %gs; closing its older ones",
                     self.kernel.id, RETIRE_SECONDS)
        except SocketClosed:
            pass  # the new link closed meanwhile: the bridge stopped relaying
        finally:
            older.close()

    async def receive(self, message: str | bytes) -> None:
        """A frame from the client (the handler's ``on_message``): decode, record activity, send or hold."""
        try:
            incoming = self.codec.decode(message)
        except FrameError as error:
            log.warning("kernel %s: a client message was ignored: %s", self.kernel.id, error)
            return
        self.service.record_activity(self.kernel.id, incoming.msg_type)
        if self._link is not None:
            await self._link.send(incoming)
        elif self._state in HOLDING:
            if len(self._held) >= MAX_HELD:
                log.warning("kernel %s: %d client messages held while %s; one more was dropped",
                            self.kernel.id, MAX_HELD, self._state.value)
                return
            self._held.append(incoming)

    # ------------------------------------------------------------------ states

    def _move(self, target: BridgeState) -> None:
        """Enter ``target``; :class:`~gateway.http.bridgestate.IllegalTransition` if the table forbids it.

        Leaving connecting or relaying (other than by going live) closes the
        live sockets, which ends their readers, and cancels a connect under
        way: what the client sends from then on waits for the next pod, if any.
        """
        check_transition(self._state, target)
        log.debug("kernel %s: websocket bridge %s -> %s", self.kernel.id, self._state.value, target.value)
        left, self._state = self._state, target
        if left in (BridgeState.CONNECTING, BridgeState.RELAYING) and target is not BridgeState.RELAYING:
            self._stop_tasks()

    def _on_state(self, kernel: Kernel, state: str) -> None:
        """A lifecycle state of the kernel, from :meth:`~gateway.kernels.kernel.Kernel.set_state` (synchronously,
        while the kernel service restarts, relaunches or buries the kernel)."""
        if self._state in ENDING:
            return
        if state in (RESTARTING, AUTORESTARTING):
            self._move(BridgeState.RESTARTING)
            if state == AUTORESTARTING:  # a requested restart is no news to the client: it asked
                self._send_status("restarting")
        elif state == STARTING and self._state is BridgeState.RESTARTING:
            self._send_status("starting")
        elif state == IDLE and self._state in (BridgeState.WAITING, BridgeState.RESTARTING):
            # idle follows a (re)launch: the kernel has a new pod, with new connection info
            announce = self._state is BridgeState.RESTARTING
            self._move(BridgeState.CONNECTING)
            self._tasks.spawn(self._connect_to_new_pod(announce=announce), "connect")
        elif state == DEAD:
            self._send_status("dead")
            self._move(BridgeState.CLOSING)
            self._close_client()

    def _send_status(self, execution_state: str) -> None:
        payload, binary = self.codec.encode("iopub", status_parts(execution_state, self._session))
        self._write(payload, binary)

    # ------------------------------------------------------------------ tasks

    async def _connect(self, *, announce: bool) -> None:
        """The connect task: open sockets to the kernel's pod, nudge it, send what was held, then relay.

        Started on entering connecting (by :meth:`open`, or when the kernel is
        idle again); the tasks of the previous pod end first, so held messages
        go to one pod, in order.  ``announce``: tell the client the kernel's
        state once relaying (after a restart).  Raises what making the sockets
        raised.
        """
        current = asyncio.current_task()
        await asyncio.gather(*(cancel_and_wait(task) for task in self._tasks if task is not current))
        connection, feed = self.kernel.connection, self.kernel.iopub
        if connection is None or not self._still_wanted(connection):
            return
        if feed is None or feed.connection is not connection:
            raise ConnectionError(f"kernel {self.kernel.id} has no iopub subscription to its pod")
        identity = None if self._away else client_identity(connection, self._session_id,
                                                             self.kernel.request.spec.language)
        link = PodLink(feed, self.codec, self._write, identity=identity)
        try:
            if self.kernel.execution_state != BUSY:
                await link.nudge(self._nudge_timeout)
            link.relay()  # before the held messages go: what they cause reaches the client
            # messages the client sent meanwhile go first, in order; no await between the last and going live
            while self._held and self._still_wanted(connection):
                await link.send(self._held.pop(0))
        except BaseException:
            link.close()
            raise
        if not self._still_wanted(connection):
            link.close()
            return
        self._move(BridgeState.RELAYING)
        self._link = link
        if announce:
            self._send_status(self.kernel.execution_state)

    def _still_wanted(self, connection: ConnectionInfo) -> bool:
        """Whether a connect to ``connection`` may go on: the bridge still connects, to that pod.

        Leaving connecting cancels the connect task, but before Python 3.12 ``asyncio.wait_for`` can
        lose that cancellation (cpython gh-86296): the task then learns it here.
        """
        return self._state is BridgeState.CONNECTING and self.kernel.connection is connection

    async def _connect_to_new_pod(self, *, announce: bool) -> None:
        """The connect task started when the kernel is idle again: a failure closes the websocket."""
        try:
            await self._connect(announce=announce)
        except (zmq.ZMQError, OSError) as error:
            if self._state is not BridgeState.CONNECTING:
                return
            log.warning("kernel %s: could not connect a client to the kernel's new pod: %s", self.kernel.id, error)
            self._move(BridgeState.CLOSING)
            self._close_client()

    def _stop_tasks(self) -> None:
        """Close the live sockets (ending their readers) and cancel the bridge's other tasks but the caller.

        Synchronous, as kernel states and the handler's ``on_close`` arrive; the
        next connect awaits the end of every task cancelled here.
        """
        link, self._link = self._link, None
        if link is not None:
            link.close()
        retired, self._retired = self._retired, []
        for older in retired:
            older.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
