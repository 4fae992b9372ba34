//! Audio handed to a playing session a piece at a time (a stored message
//! streamed from its file), next to clips held whole in memory (prompts).
//!
//! The media thread only takes ready pieces ([`AudioFeed::fill`] never
//! waits): reading and decoding the file happen elsewhere, a bounded
//! channel ahead, so a listener costs a few pieces of memory however long
//! the message. A piece that is not there in time is heard as silence (an
//! underrun), never as a stalled clock for the other calls.

use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::prompts::Pcm;

/// One thing to play: a clip, or a feed that ends when its sender does.
pub enum PlayItem {
    Clip(Pcm),
    Feed(AudioFeed),
}

impl From<Pcm> for PlayItem {
    fn from(pcm: Pcm) -> PlayItem {
        PlayItem::Clip(pcm)
    }
}

impl std::fmt::Debug for PlayItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlayItem::Clip(pcm) => write!(f, "Clip({} samples)", pcm.len()),
            PlayItem::Feed(_) => f.write_str("Feed"),
        }
    }
}

/// How far [`AudioFeed::fill`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The frame is full; more may follow.
    Full,
    /// The next piece is not ready yet.
    Starved,
    /// The sender finished and everything was played.
    Ended,
}

/// The playing end of a feed.
pub struct AudioFeed {
    pieces: mpsc::Receiver<Vec<i16>>,
    piece: Vec<i16>,
    position: usize,
}

/// The producing end: a bounded channel of pieces of samples. Dropping it
/// ends the feed once its pieces are played.
pub type FeedSender = mpsc::Sender<Vec<i16>>;

impl AudioFeed {
    /// A feed that starts with `first` (read before playing starts, so the
    /// first frames never wait) and holds at most `ahead` further pieces.
    pub fn channel(first: Vec<i16>, ahead: usize) -> (FeedSender, AudioFeed) {
        let (tx, rx) = mpsc::channel(ahead.max(1));
        let feed = AudioFeed {
            pieces: rx,
            piece: first,
            position: 0,
        };
        (tx, feed)
    }

    /// Appends samples to `frame` until it holds `want`, the feed runs
    /// dry, or it ends.
    pub fn fill(&mut self, frame: &mut Vec<i16>, want: usize) -> Fill {
        while frame.len() < want {
            if self.position < self.piece.len() {
                let take = (want - frame.len()).min(self.piece.len() - self.position);
                frame.extend_from_slice(&self.piece[self.position..self.position + take]);
                self.position += take;
                continue;
            }
            match self.pieces.try_recv() {
                Ok(next) => {
                    self.piece = next;
                    self.position = 0;
                }
                Err(TryRecvError::Empty) => return Fill::Starved,
                Err(TryRecvError::Disconnected) => return Fill::Ended,
            }
        }
        Fill::Full
    }

    /// Every remaining sample, waiting for the sender (tests and the
    /// scripted test call, which play nothing in real time).
    pub async fn collect(mut self) -> Vec<i16> {
        let mut out = self.piece.split_off(self.position);
        while let Some(piece) = self.pieces.recv().await {
            out.extend_from_slice(&piece);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_fill_frames_across_boundaries_then_end() {
        let (tx, mut feed) = AudioFeed::channel(vec![1; 100], 2);
        tx.try_send(vec![2; 100]).unwrap();
        tx.try_send(vec![3; 30]).unwrap();
        // Bounded: a third piece waits for room.
        assert!(tx.try_send(vec![4; 1]).is_err());
        let mut frame = Vec::new();
        assert_eq!(feed.fill(&mut frame, 160), Fill::Full);
        assert_eq!(&frame[..100], &[1; 100][..]);
        assert_eq!(&frame[100..], &[2; 60][..]);
        frame.clear();
        // 40 + 30 samples, then nothing ready yet.
        assert_eq!(feed.fill(&mut frame, 160), Fill::Starved);
        assert_eq!(frame.len(), 70);
        assert_eq!(frame[69], 3);
        tx.try_send(vec![5; 200]).unwrap();
        assert_eq!(feed.fill(&mut frame, 160), Fill::Full);
        assert_eq!(frame[70..], [5; 90][..]);
        drop(tx);
        frame.clear();
        assert_eq!(feed.fill(&mut frame, 160), Fill::Ended);
        assert_eq!(frame, vec![5; 110]);
    }

    #[tokio::test]
    async fn collect_waits_for_the_sender_to_finish() {
        let (tx, mut feed) = AudioFeed::channel(vec![7; 10], 1);
        let mut frame = Vec::new();
        feed.fill(&mut frame, 4);
        let producer = tokio::spawn(async move {
            for i in 0..5 {
                tx.send(vec![i; 3]).await.unwrap();
            }
        });
        let all = feed.collect().await;
        producer.await.unwrap();
        assert_eq!(all.len(), 6 + 15);
        assert_eq!(&all[..6], &[7; 6]);
        assert_eq!(&all[18..], &[4; 3]);
    }

    #[test]
    fn a_dropped_feed_tells_the_sender() {
        let (tx, feed) = AudioFeed::channel(Vec::new(), 1);
        drop(feed);
        assert!(tx.is_closed());
    }
}
