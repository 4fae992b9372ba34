//! Audio handed to a playing session a piece at a time (a stored message
//! streamed from its file), next to clips held whole in memory (prompts).
//!
//! A feed is a wait-free single-producer ring of samples (`rtrb`), sized
//! once: the reader writes into it, the media thread copies out of it, and
//! neither allocates, frees or takes a lock per piece. That matters on the
//! media thread: freeing memory another thread allocated takes that
//! thread's allocator lock, and a real-time thread must not wait behind a
//! preempted lower-priority one. [`AudioFeed::fill`] never waits: samples
//! that are not there in time are heard as silence (an underrun), never as
//! a stalled clock for the other calls.

use std::time::Duration;

use rtrb::{Consumer, Producer, RingBuffer};

use crate::prompts::Pcm;

/// One thing to play: a clip, or a feed that ends when its writer does.
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
    /// The next samples are not ready yet.
    Starved,
    /// The writer finished and everything was played.
    Ended,
}

/// The playing end of a feed.
pub struct AudioFeed {
    samples: Consumer<i16>,
}

/// The writing end. Dropping it ends the feed once its samples are played.
pub struct FeedWriter {
    samples: Producer<i16>,
}

impl AudioFeed {
    /// A feed that holds up to `capacity` samples not yet played.
    pub fn channel(capacity: usize) -> (FeedWriter, AudioFeed) {
        let (producer, consumer) = RingBuffer::new(capacity);
        (
            FeedWriter { samples: producer },
            AudioFeed { samples: consumer },
        )
    }

    /// Appends samples to `frame` until it holds `want`, the feed runs
    /// dry, or it ends.
    pub fn fill(&mut self, frame: &mut Vec<i16>, want: usize) -> Fill {
        loop {
            let n = want.saturating_sub(frame.len()).min(self.samples.slots());
            if n > 0
                && let Ok(chunk) = self.samples.read_chunk(n)
            {
                let (a, b) = chunk.as_slices();
                frame.extend_from_slice(a);
                frame.extend_from_slice(b);
                chunk.commit_all();
            }
            if frame.len() >= want {
                return Fill::Full;
            }
            if !self.samples.is_abandoned() {
                return Fill::Starved;
            }
            // The writer is gone: whatever it wrote before is visible now.
            if self.samples.is_empty() {
                return Fill::Ended;
            }
        }
    }

    /// Every remaining sample, waiting for the writer (tests and the
    /// scripted test call, which play nothing in real time).
    pub async fn collect(mut self) -> Vec<i16> {
        let mut out = Vec::new();
        loop {
            // One more than is ready: Full never, Ended once it is over.
            let want = out.len() + self.samples.slots() + 1;
            match self.fill(&mut out, want) {
                Fill::Ended => return out,
                Fill::Full | Fill::Starved => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

impl FeedWriter {
    /// Samples that fit now.
    pub fn room(&self) -> usize {
        self.samples.slots()
    }

    /// Writes as many of `samples` as fit; returns how many.
    pub fn write(&mut self, samples: &[i16]) -> usize {
        let n = samples.len().min(self.samples.slots());
        match self.samples.write_chunk_uninit(n) {
            Ok(chunk) => chunk.fill_from_iter(samples[..n].iter().copied()),
            Err(_) => 0,
        }
    }

    /// The listener has gone (the feed was dropped).
    pub fn is_abandoned(&self) -> bool {
        self.samples.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fill_frames_then_the_feed_ends() {
        let (mut writer, mut feed) = AudioFeed::channel(300);
        assert_eq!(writer.write(&[1; 100]), 100);
        assert_eq!(writer.write(&[2; 100]), 100);
        assert_eq!(writer.write(&[3; 130]), 100, "bounded");
        assert_eq!(writer.room(), 0);
        let mut frame = Vec::new();
        assert_eq!(feed.fill(&mut frame, 160), Fill::Full);
        assert_eq!(&frame[..100], &[1; 100][..]);
        assert_eq!(&frame[100..], &[2; 60][..]);
        frame.clear();
        // 40 + 100 samples, then nothing ready yet.
        assert_eq!(feed.fill(&mut frame, 160), Fill::Starved);
        assert_eq!(frame.len(), 140);
        assert_eq!(frame[139], 3);
        // The ring wraps around.
        assert_eq!(writer.write(&[5; 200]), 200);
        assert_eq!(feed.fill(&mut frame, 160), Fill::Full);
        assert_eq!(frame[140..], [5; 20][..]);
        drop(writer);
        frame.clear();
        assert_eq!(feed.fill(&mut frame, 400), Fill::Ended);
        assert_eq!(frame, vec![5; 180]);
    }

    #[tokio::test]
    async fn collect_waits_for_the_writer_to_finish() {
        let (mut writer, mut feed) = AudioFeed::channel(8);
        writer.write(&[7; 8]);
        let mut frame = Vec::new();
        feed.fill(&mut frame, 2);
        let producer = std::thread::spawn(move || {
            for i in 0..50 {
                let mut left: &[i16] = &[i; 3];
                while !left.is_empty() {
                    left = &left[writer.write(left)..];
                    std::thread::yield_now();
                }
            }
        });
        let all = feed.collect().await;
        producer.join().unwrap();
        assert_eq!(all.len(), 6 + 150);
        assert_eq!(&all[..6], &[7; 6]);
        assert_eq!(&all[153..], &[49; 3]);
    }

    #[test]
    fn a_dropped_feed_tells_the_writer() {
        let (writer, feed) = AudioFeed::channel(10);
        assert!(!writer.is_abandoned());
        drop(feed);
        assert!(writer.is_abandoned());
    }
}
