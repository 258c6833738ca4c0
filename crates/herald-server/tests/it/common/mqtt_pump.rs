//! rumqttc's event loops (3.1.1 and 5) pumped on a task of their own, so a
//! test can wait for the packet it wants while the others are kept for later.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::raw::PATIENCE;

/// An rumqttc event loop: incoming packets, or the error that ended it.
pub trait EventLoop: Send + 'static {
    /// An incoming packet.
    type Packet: Debug + Send + 'static;
    /// The next incoming packet (`None` for outgoing events), or the error.
    fn next(&mut self) -> impl Future<Output = Result<Option<Self::Packet>, String>> + Send;
}

impl EventLoop for rumqttc::EventLoop {
    type Packet = rumqttc::Packet;
    async fn next(&mut self) -> Result<Option<Self::Packet>, String> {
        match self.poll().await {
            Ok(rumqttc::Event::Incoming(packet)) => Ok(Some(packet)),
            Ok(rumqttc::Event::Outgoing(_)) => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl EventLoop for rumqttc::v5::EventLoop {
    type Packet = rumqttc::v5::mqttbytes::v5::Packet;
    async fn next(&mut self) -> Result<Option<Self::Packet>, String> {
        match self.poll().await {
            Ok(rumqttc::v5::Event::Incoming(packet)) => Ok(Some(packet)),
            Ok(rumqttc::v5::Event::Outgoing(_)) => Ok(None),
            Err(error) => Err(format!("{error:?}")),
        }
    }
}

/// The incoming side of one client connection.
pub struct Pump<P> {
    /// Incoming packets, then the error that ended the connection.
    pub events: mpsc::UnboundedReceiver<Result<P, String>>,
    /// Packets a `wait` passed over, for the next one.
    skipped: VecDeque<P>,
    task: JoinHandle<()>,
}

impl<P: Debug + Send + 'static> Pump<P> {
    /// Pumps `eventloop` until it fails (there is no automatic reconnect: a
    /// test decides when to connect again) and returns the first packet, which
    /// should be the `CONNACK`, or the error that ended the connection first.
    ///
    /// # Panics
    /// When nothing arrives within [`PATIENCE`].
    pub async fn start<E: EventLoop<Packet = P>>(mut eventloop: E) -> Result<(Self, P), String> {
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.next().await;
                let failed = event.is_err();
                if let Some(event) = event.transpose()
                    && (tx.send(event).is_err() || failed)
                {
                    return;
                }
            }
        });
        match tokio::time::timeout(PATIENCE, events.recv()).await {
            Ok(Some(Ok(first))) => Ok((
                Self {
                    events,
                    skipped: VecDeque::new(),
                    task,
                },
                first,
            )),
            Ok(Some(Err(error))) => Err(error),
            Ok(None) => Err("event loop ended".into()),
            Err(_) => panic!("no CONNACK within {PATIENCE:?}"),
        }
    }

    /// The next incoming packet matching `wanted`; others are kept for later waits.
    ///
    /// # Panics
    /// When the connection fails or nothing wanted arrives within [`PATIENCE`].
    pub async fn wait(&mut self, wanted: impl Fn(&P) -> bool) -> P {
        if let Some(i) = self.skipped.iter().position(&wanted) {
            return self.skipped.remove(i).expect("present");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(packet))) if wanted(&packet) => return packet,
                Ok(Some(Ok(packet))) => self.skipped.push_back(packet),
                Ok(Some(Err(error))) => panic!("connection failed: {error}"),
                Ok(None) => panic!("event loop ended"),
                Err(_) => panic!("nothing wanted within {PATIENCE:?}"),
            }
        }
    }

    /// Waits (boundedly) for the connection to end, after a `DISCONNECT`.
    pub async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.events.recv()).await {}
    }

    /// Drops the connection without `DISCONNECT`, as a crashed client would.
    pub fn kill(self) {
        self.task.abort();
    }
}
