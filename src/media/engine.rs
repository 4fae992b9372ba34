//! The media runtime: a few worker threads, each pacing all of its sessions
//! from one 20 ms clock.
//!
//! One timer per worker, not one per call: at every tick a worker sends
//! each session's next packet, and reads a fifth of its sessions' sockets
//! (each every 100 ms, in turn) with one `recvmmsg` that takes the ~5
//! datagrams waiting there. Thousands of calls therefore cost one wake-up
//! per worker per 20 ms and about a fifth of a system call per received
//! packet, and outgoing packets of all calls leave on the same beat.
//! Readiness (epoll) was tried and dropped: with callers sending all the
//! time nearly every socket is ready, and asking cost more than the one
//! `EAGAIN` an idle socket costs. Applications talk to a session through
//! [`MediaSession`] (commands, statistics) and an event channel.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::feed::PlayItem;
use crate::store::MessageWriter;

use super::dtmf::DtmfSource;
use super::ports::PortLease;
use super::session::{
    MediaParams, RecordOptions, RtpSession, SessionEvent, SessionStats, StopReason,
};
use super::udp::{BATCH, ReceiveBatch, enable_timestamps};

pub const TICK: Duration = Duration::from_millis(20);

/// How often (in ticks) each session publishes its statistics.
const PUBLISH_TICKS: u64 = 50;

/// Sockets are read every fifth tick (100 ms): about five datagrams wait on
/// each, and one `recvmmsg` takes them all, a fifth of the system calls of
/// reading every tick. Sending stays on every tick. Recording, DTMF and
/// barge-in learn of audio up to 100 ms later, under what a caller notices
/// (a stop key or the end of a call first reads what is queued); the
/// kernel's arrival stamps keep jitter figures exact.
pub const RECEIVE_TICKS: u64 = 5;
/// A session that is only recording is read every tenth tick (200 ms): it
/// answers nobody, so half the system calls of the 100 ms cycle cost it
/// nothing a caller hears (the end of a message comes 200 ms later at most;
/// a stop key or a hang-up reads what is queued first). A multiple of
/// [`RECEIVE_TICKS`], so a session keeps its phase when it switches.
pub const RECORDING_RECEIVE_TICKS: u64 = 10;
/// At most this many batches per socket per read (a flood is cut off).
const MAX_BATCHES_PER_READ: usize = 4;

/// A session's latest statistics, written by its worker about once a second
/// and at close, read by whoever holds a [`MediaSession`].
pub type SharedStats = Arc<Mutex<SessionStats>>;

// Commands carry a socket or a recording once per session: not worth a box.
#[allow(clippy::large_enum_variant)]
enum Command {
    Open {
        id: u64,
        socket: UdpSocket,
        lease: PortLease,
        params: Option<MediaParams>,
        media_timeout: Duration,
        events: UnboundedSender<SessionEvent>,
        stats: SharedStats,
    },
    Update(u64, MediaParams),
    Play {
        id: u64,
        play_id: u64,
        items: Vec<PlayItem>,
        interrupt: String,
    },
    StopPlayback(u64),
    Record(u64, MessageWriter, RecordOptions),
    StopRecording(u64),
    Digit(u64, char, DtmfSource),
    Close(u64),
}

/// Counters shared by all workers, for metrics and load tests.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub sessions: AtomicUsize,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub lost: AtomicU64,
    pub late_ticks: AtomicU64,
    /// Frames of streamed messages not read in time (sent as silence).
    pub underruns: AtomicU64,
}

#[derive(Clone)]
pub struct MediaEngine {
    workers: Arc<Vec<Sender<Command>>>,
    next_worker: Arc<AtomicUsize>,
    next_id: Arc<AtomicU64>,
    stats: Arc<EngineStats>,
    /// Given to every session opened (see [`RtpSession::set_media_timeout`]).
    media_timeout: Duration,
}

impl MediaEngine {
    /// Start `workers` pacing threads (at least one), at SCHED_FIFO
    /// `realtime_priority` where allowed (0: never; see [`raise_priority`]).
    pub fn start(workers: usize, realtime_priority: u8) -> MediaEngine {
        let stats = Arc::new(EngineStats::default());
        let senders = (0..workers.max(1))
            .map(|n| {
                let (tx, rx) = mpsc::channel();
                let stats = stats.clone();
                thread::Builder::new()
                    .name(format!("media-{n}"))
                    .spawn(move || Worker::new(rx, stats).run(realtime_priority))
                    .expect("spawning a media thread");
                tx
            })
            .collect();
        MediaEngine {
            workers: Arc::new(senders),
            next_worker: Arc::new(AtomicUsize::new(0)),
            next_id: Arc::new(AtomicU64::new(1)),
            stats,
            media_timeout: Duration::ZERO,
        }
    }

    /// Sessions opened from now on report [`SessionEvent::MediaTimeout`]
    /// after `timeout` without RTP (zero, the default: never).
    pub fn with_media_timeout(mut self, timeout: Duration) -> MediaEngine {
        self.media_timeout = timeout;
        self
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Hand a bound RTP socket to a worker. Events arrive on `events`.
    pub fn open(
        &self,
        socket: UdpSocket,
        lease: PortLease,
        params: Option<MediaParams>,
        events: UnboundedSender<SessionEvent>,
    ) -> std::io::Result<MediaSession> {
        socket.set_nonblocking(true)?;
        if let Err(e) = enable_timestamps(&socket) {
            // Jitter is then measured at read time: coarser, still usable.
            tracing::debug!(error = %e, "no kernel receive timestamps");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let worker = self.workers[n].clone();
        let stats = SharedStats::default();
        worker
            .send(Command::Open {
                id,
                socket,
                lease,
                params,
                media_timeout: self.media_timeout,
                events,
                stats: stats.clone(),
            })
            .map_err(|_| std::io::Error::other("media worker stopped"))?;
        Ok(MediaSession {
            id,
            worker,
            stats,
            owner: true,
            closed: false,
        })
    }
}

/// A handle on one session. The owner's handle closes the session when
/// dropped; [`MediaSession::handle`] gives others a handle that does not.
pub struct MediaSession {
    id: u64,
    worker: Sender<Command>,
    stats: SharedStats,
    owner: bool,
    closed: bool,
}

impl MediaSession {
    /// A handle for another party (the application) that does not own the session.
    pub fn handle(&self) -> MediaSession {
        MediaSession {
            id: self.id,
            worker: self.worker.clone(),
            stats: self.stats.clone(),
            owner: false,
            closed: false,
        }
    }

    /// The session's statistics as of the last second (final after close).
    pub fn stats(&self) -> SessionStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, c: Command) {
        // A stopped worker means the process is shutting down.
        let _ = self.worker.send(c);
    }

    pub fn update(&self, params: MediaParams) {
        self.send(Command::Update(self.id, params));
    }

    pub fn play(&self, play_id: u64, items: Vec<PlayItem>, interrupt: &str) {
        self.send(Command::Play {
            id: self.id,
            play_id,
            items,
            interrupt: interrupt.to_string(),
        });
    }

    pub fn stop_playback(&self) {
        self.send(Command::StopPlayback(self.id));
    }

    pub fn record(&self, writer: MessageWriter, options: RecordOptions) {
        self.send(Command::Record(self.id, writer, options));
    }

    pub fn stop_recording(&self) {
        self.send(Command::StopRecording(self.id));
    }

    /// A digit that arrived by signalling (SIP INFO).
    pub fn digit(&self, digit: char, source: DtmfSource) {
        self.send(Command::Digit(self.id, digit, source));
    }

    pub fn close(&mut self) {
        if self.owner && !self.closed {
            self.closed = true;
            self.send(Command::Close(self.id));
        }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.close();
    }
}

struct Slot {
    id: u64,
    socket: UdpSocket,
    _lease: PortLease,
    session: RtpSession,
    events: UnboundedSender<SessionEvent>,
    published: SharedStats,
    reported: SessionStats,
    /// Read since its last tick (silence is judged after a read).
    read: bool,
    /// The worker tick the session last stepped to (see [`Pace`]).
    ticked_at: u64,
    /// The address the socket is connected to (see [`Slot::follow_latch`]).
    connected: Option<SocketAddr>,
    /// Connected, and everything queued from before the connect has been
    /// read: only the peer's datagrams can be queued, so reads need not ask
    /// for their source.
    peer_only: bool,
    /// The latched source last acted on, connected or not.
    followed: Option<SocketAddr>,
}

impl Slot {
    /// Once the session has latched onto the source of its media, the
    /// socket is connected to it: the kernel then keeps the route instead
    /// of looking it up for every packet sent (about a tenth of the media
    /// threads' time in a profile of 1,000 deposits) and drops datagrams
    /// from anyone else, as Asterisk's `strictrtp` and FreeSWITCH's
    /// auto-adjust do once the source is learned (no RTP injection). A
    /// re-INVITE to a new address unlatches the session; the socket is then
    /// disconnected so that the new source can be learned.
    fn follow_latch(&mut self) {
        let latched = self.session.latched_source();
        if latched == self.followed {
            return;
        }
        self.followed = latched;
        self.peer_only = false;
        let result = match latched {
            Some(addr) => self.socket.connect(addr),
            None if self.connected.is_some() => disconnect(&self.socket),
            None => Ok(()),
        };
        match result {
            Ok(()) => self.connected = latched,
            Err(e) => {
                // Sends go on with the address each time.
                tracing::debug!(error = %e, ?latched, "rtp socket not (dis)connected");
                if disconnect(&self.socket).is_ok() {
                    self.connected = None;
                }
            }
        }
    }

    fn publish(&self) {
        *self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = self.session.stats();
    }
}

/// When a slot needs the worker, kept beside `slots` (index for index) so
/// that the tick loops can pass over sessions that are not due without
/// touching their memory. A session that only records sends nothing but a
/// keep-alive a second, so it is stepped on its read cycle, ten ticks at a
/// time ([`RtpSession::on_ticks_after`]); stepping each of thousands of such
/// sessions every 20 ms was a tenth of voxmail's CPU at 1,000 deposits,
/// mostly cache misses. Any command first brings a session's steps up to
/// date, so nothing it does is seen out of time.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Recording and not playing: stepped only on its phase.
    lazy: bool,
    /// The tick, modulo [`RECORDING_RECEIVE_TICKS`], of its reads (and, when
    /// lazy, its steps).
    phase: u8,
}

impl Pace {
    fn of(slot: &Slot) -> Pace {
        Pace {
            lazy: slot.session.is_recording() && !slot.session.is_playing(),
            phase: (slot.id % RECORDING_RECEIVE_TICKS) as u8,
        }
    }

    fn steps_at(self, tick: u64) -> bool {
        !self.lazy || u64::from(self.phase) == tick % RECORDING_RECEIVE_TICKS
    }

    fn reads_at(self, tick: u64) -> bool {
        // Each session is read on its own phase of the cycle, so a tick's
        // receive work is a fraction of the sessions, not all.
        let cycle = if self.lazy {
            RECORDING_RECEIVE_TICKS
        } else {
            RECEIVE_TICKS
        };
        u64::from(self.phase) % cycle == tick % cycle
    }
}

struct Worker {
    commands: Receiver<Command>,
    slots: Vec<Slot>,
    /// `pace[i]` belongs to `slots[i]`.
    pace: Vec<Pace>,
    index: HashMap<u64, usize>,
    stats: Arc<EngineStats>,
    /// 20 ms ticks since the worker started.
    ticks: u64,
    batch: ReceiveBatch,
    events: Vec<SessionEvent>,
}

impl Worker {
    fn new(commands: Receiver<Command>, stats: Arc<EngineStats>) -> Self {
        Worker {
            commands,
            slots: Vec::new(),
            pace: Vec::new(),
            index: HashMap::new(),
            stats,
            ticks: 0,
            batch: ReceiveBatch::default(),
            events: Vec::new(),
        }
    }

    fn run(mut self, realtime_priority: u8) {
        let realtime = raise_priority(realtime_priority);
        let mut next = Instant::now() + TICK;
        loop {
            if !self.drain_commands() {
                return;
            }
            let started = Instant::now();
            self.tick();
            let now = Instant::now();
            if now < next {
                thread::sleep(next - now);
                next += TICK;
            } else {
                // Overloaded or descheduled: count it, and resynchronise
                // rather than bursting to catch up.
                self.stats.late_ticks.fetch_add(1, Ordering::Relaxed);
                if realtime {
                    // A real-time thread that never sleeps would leave
                    // signalling only the kernel's 5 % reserve: an
                    // overloaded worker gives up a millisecond a tick.
                    thread::sleep(Duration::from_millis(1));
                }
                if now - next > TICK * 2 {
                    // Whether our own work or the wait for a CPU made it late.
                    tracing::warn!(
                        late_ms = (now - next).as_millis() as u64,
                        tick_ms = (now - started).as_millis() as u64,
                        sessions = self.slots.len(),
                        "media tick late"
                    );
                }
                next = if now - next > TICK * 5 {
                    now + TICK
                } else {
                    next + TICK
                };
            }
        }
    }

    /// Apply queued commands; false when the engine is gone.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => self.apply(c),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return !self.slots.is_empty(),
            }
        }
    }

    fn apply(&mut self, command: Command) {
        let mut events = std::mem::take(&mut self.events);
        let id = match &command {
            Command::Open { id, .. } => *id,
            Command::Update(id, _)
            | Command::StopPlayback(id)
            | Command::Record(id, ..)
            | Command::StopRecording(id)
            | Command::Digit(id, ..)
            | Command::Close(id)
            | Command::Play { id, .. } => *id,
        };
        if let Command::Open {
            id,
            socket,
            lease,
            params,
            media_timeout,
            events: tx,
            stats,
        } = command
        {
            let mut session = RtpSession::new(params);
            session.set_media_timeout(media_timeout);
            self.index.insert(id, self.slots.len());
            self.slots.push(Slot {
                id,
                socket,
                _lease: lease,
                session,
                events: tx,
                published: stats,
                reported: SessionStats::default(),
                read: false,
                ticked_at: self.ticks,
                connected: None,
                peer_only: false,
                followed: None,
            });
            self.pace.push(Pace::of(&self.slots[self.slots.len() - 1]));
            self.stats.sessions.fetch_add(1, Ordering::Relaxed);
            self.events = events;
            return;
        }
        let Some(&i) = self.index.get(&id) else {
            // Commands for a closed session: a recording handed over late is
            // given back so its audio is still saved.
            if let Command::Record(_, writer, _) = command {
                tracing::warn!(session = id, "recording for a closed session");
                drop(writer);
            }
            self.events = events;
            return;
        };
        let slot = &mut self.slots[i];
        Self::step(slot, self.ticks, &mut events);
        match command {
            Command::Update(_, p) => slot.session.update(p),
            Command::Play {
                play_id,
                items,
                interrupt,
                ..
            } => slot.session.play(play_id, items, interrupt, &mut events),
            Command::StopPlayback(_) => slot.session.stop_playback(&mut events),
            Command::Record(_, writer, options) => {
                slot.session.start_recording(writer, options, &mut events)
            }
            // Audio sent before the stop (or a `#` by SIP INFO) may still
            // wait on the socket (read every few ticks): record it first.
            Command::StopRecording(_) => {
                Self::receive(slot, &mut self.batch, &mut events);
                slot.session
                    .stop_recording(StopReason::Stopped, &mut events)
            }
            Command::Digit(_, d, source) => {
                if slot.session.is_recording() {
                    Self::receive(slot, &mut self.batch, &mut events);
                }
                slot.session.on_digit(d, source, &mut events)
            }
            Command::Close(_) => {
                // Read what is still queued on the socket before closing.
                Self::receive(slot, &mut self.batch, &mut events);
                slot.session.close(&mut events);
                slot.publish();
                for e in events.drain(..) {
                    let _ = slot.events.send(e);
                }
                self.remove(i);
                self.events = events;
                return;
            }
            Command::Open { .. } => unreachable!("handled above"),
        }
        for e in events.drain(..) {
            let _ = slot.events.send(e);
        }
        self.pace[i] = Pace::of(slot);
        self.events = events;
    }

    fn remove(&mut self, i: usize) {
        let slot = self.slots.swap_remove(i);
        self.pace.swap_remove(i);
        self.index.remove(&slot.id);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.id, i);
        }
        self.account(&slot.session.stats(), &slot.reported);
        self.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }

    fn account(&self, now: &SessionStats, before: &SessionStats) {
        self.stats
            .packets_in
            .fetch_add(now.packets_in - before.packets_in, Ordering::Relaxed);
        self.stats
            .packets_out
            .fetch_add(now.packets_out - before.packets_out, Ordering::Relaxed);
        self.stats
            .lost
            .fetch_add(now.lost - before.lost, Ordering::Relaxed);
        self.stats
            .underruns
            .fetch_add(now.underruns - before.underruns, Ordering::Relaxed);
    }

    /// Take everything queued on the slot's socket, a batch per call.
    fn receive(slot: &mut Slot, batch: &mut ReceiveBatch, events: &mut Vec<SessionEvent>) {
        // Bounded: a flood cannot keep the worker from its other sessions.
        for _ in 0..MAX_BATCHES_PER_READ {
            let taken = match (slot.connected, slot.peer_only) {
                (Some(peer), true) => batch.recv_connected(&slot.socket, peer),
                _ => batch.recv(&slot.socket),
            };
            match taken {
                Ok(n) => {
                    for i in 0..n {
                        let (r, data) = batch.get(i);
                        slot.session.on_datagram(r.from, data, r.at, events);
                    }
                    if n < BATCH {
                        // The queue is empty: whatever came before a
                        // connect has been read.
                        slot.peer_only = slot.connected.is_some();
                        return;
                    }
                }
                // ICMP port unreachable from a previous send, and the like:
                // reading it cleared it.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "rtp receive");
                    return;
                }
            }
        }
    }

    /// Step a session up to worker tick `now` (all the ticks it was passed
    /// over at once) and send what it has to send.
    fn step(slot: &mut Slot, now: u64, events: &mut Vec<SessionEvent>) {
        let steps = now.saturating_sub(slot.ticked_at);
        if steps == 0 {
            return;
        }
        slot.ticked_at = now;
        let received = std::mem::take(&mut slot.read);
        slot.follow_latch();
        if let Some((dest, packet)) = slot.session.on_ticks_after(steps, received, events) {
            send(&slot.socket, slot.connected, packet, dest);
        }
        for e in events.drain(..) {
            let _ = slot.events.send(e);
        }
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let mut events = std::mem::take(&mut self.events);
        // Sends first, all together: each session's packet leaves at the
        // same offset into every tick, whatever this tick's reads cost
        // (reads interleaved with sends moved later packets by up to a few
        // milliseconds, which showed as outgoing jitter). A digit read
        // below changes what is sent from the next tick on.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !self.pace[i].steps_at(self.ticks) {
                continue;
            }
            Self::step(slot, self.ticks, &mut events);
            self.pace[i] = Pace::of(slot);
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !self.pace[i].reads_at(self.ticks) {
                continue;
            }
            Self::receive(slot, &mut self.batch, &mut events);
            slot.read = true;
            for e in events.drain(..) {
                let _ = slot.events.send(e);
            }
            self.pace[i] = Pace::of(slot);
        }
        self.events = events;
        // Publish counters about once a second.
        if self.ticks.is_multiple_of(PUBLISH_TICKS) {
            for i in 0..self.slots.len() {
                let (now, before) = (self.slots[i].session.stats(), self.slots[i].reported);
                self.account(&now, &before);
                self.slots[i].reported = now;
                self.slots[i].publish();
            }
        }
    }
}

/// Media threads wake every 20 ms and must not wait behind disk writes,
/// Argon2, SIPp or a compiler for a core: while another thread holds it, a
/// session's packets leave late and the far end hears jitter (1,000
/// playbacks beside SIPp on two cores: gap p99 24.7 ms at nice -10, 20.5 ms
/// at SCHED_FIFO 10). SCHED_FIFO at `realtime_priority` if allowed
/// (CAP_SYS_NICE, or an RLIMIT_RTPRIO such as systemd's LimitRTPRIO), else
/// nice -10, else nothing. Returns whether the thread is real-time.
fn raise_priority(realtime_priority: u8) -> bool {
    if realtime_priority > 0 {
        let param = libc::sched_param {
            sched_priority: libc::c_int::from(realtime_priority.min(99)),
        };
        // SAFETY: pid 0 is the calling thread; `param` is a valid pointer.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
            return true;
        }
        tracing::debug!(error = %std::io::Error::last_os_error(), "media thread not real-time");
    }
    if let Err(e) = crate::thread_nice::set(-10) {
        tracing::debug!(error = %e, "media thread keeps its priority");
    }
    false
}

/// Sends one packet: without the address when the socket is connected to it.
fn send(socket: &UdpSocket, connected: Option<SocketAddr>, packet: &[u8], dest: SocketAddr) {
    let sent = if connected == Some(dest) {
        socket.send(packet)
    } else {
        socket.send_to(packet, dest)
    };
    if let Err(e) = sent
        && e.kind() != ErrorKind::WouldBlock
    {
        tracing::trace!(error = %e, %dest, "rtp send");
    }
}

/// Dissolves a UDP socket's association (connect to AF_UNSPEC), so that it
/// takes datagrams from any source again.
fn disconnect(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC and its true size.
    let rc = unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
