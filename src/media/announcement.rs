//! Something said to one room member over the room's mix, as a sequence of
//! shared clips.
//!
//! A clip is a prompt's (or a number word's) 16 kHz samples with their
//! 8 kHz copy, both made once at start-up. An announcement is a short list
//! of clips played one after another: "there are" + "forty" + "two" +
//! "participants in this conference" is four clips, so saying a count to a
//! member who joins a busy room copies, filters and allocates no audio —
//! only the list, a few hundred bytes. (It used to be built per count, about
//! 240 KB and half a millisecond of filtering each time; in a room whose
//! count keeps changing, that was most joins.)
//!
//! Each clip's 8 kHz copy is halved on its own, so the filter starts afresh
//! at each boundary; clips begin and end in silence, where that cannot be
//! heard. Clips are kept an even number of samples long, so the 8 kHz copy
//! is exactly half and a 20 ms frame spans the same boundary at both rates.

use std::sync::Arc;

use crate::media::pcm::Halve;

/// One piece of an announcement: 16 kHz samples and their 8 kHz copy.
/// Cloning is cheap (both are shared).
#[derive(Clone, Debug, Default)]
pub struct Clip {
    wide: Arc<[i16]>,
    narrow: Arc<[i16]>,
}

impl Clip {
    /// From 16 kHz samples (shared, not copied); the 8 kHz copy is made now.
    /// An odd-length input is copied with one sample of silence at its end.
    pub fn new(wide: impl Into<Arc<[i16]>>) -> Clip {
        let mut wide: Arc<[i16]> = wide.into();
        if wide.len() % 2 == 1 {
            wide = wide.iter().copied().chain([0]).collect();
        }
        let mut narrow = Vec::with_capacity(wide.len() / 2);
        Halve::default().run(&wide, &mut narrow);
        Clip {
            wide,
            narrow: narrow.into(),
        }
    }

    /// The 16 kHz samples.
    pub fn wide(&self) -> &[i16] {
        &self.wide
    }

    /// The 8 kHz samples, half as many.
    pub fn narrow(&self) -> &[i16] {
        &self.narrow
    }
}

/// Clips said one after another. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Announcement {
    clips: Arc<[Clip]>,
    /// The clips' length in 16 kHz samples (read every 20 ms while it plays).
    len: usize,
}

/// Which of a clip's two copies to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// 16 kHz.
    Wide,
    /// 8 kHz.
    Narrow,
}

impl Announcement {
    /// One clip made from 16 kHz samples.
    pub fn new(wide: impl Into<Arc<[i16]>>) -> Announcement {
        Announcement::of([Clip::new(wide)])
    }

    /// These clips in this order.
    pub fn of(clips: impl IntoIterator<Item = Clip>) -> Announcement {
        let clips: Arc<[Clip]> = clips.into_iter().collect();
        let len = clips.iter().map(|c| c.wide.len()).sum();
        Announcement { clips, len }
    }

    /// Its length in 16 kHz samples.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The clips, in order.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }

    /// Adds the samples from `at` (counted in 16 kHz samples from the
    /// start) into `frame`, at `rate`, across clip boundaries, saturating;
    /// as many as `frame` holds or the announcement has left. At
    /// [`Rate::Narrow`] `at` is halved: an 8 kHz frame of 160 samples reads
    /// what a 16 kHz frame of 320 at the same `at` would.
    pub fn overlay(&self, at: usize, rate: Rate, frame: &mut [i16]) {
        let mut skip = at;
        let mut frame = frame;
        for clip in self.clips.iter() {
            if frame.is_empty() {
                return;
            }
            let len = clip.wide.len();
            if skip >= len {
                skip -= len;
                continue;
            }
            let chunk = match rate {
                Rate::Wide => clip.wide.get(skip..),
                Rate::Narrow => clip.narrow.get(skip / 2..),
            }
            .unwrap_or(&[]);
            let n = chunk.len().min(frame.len());
            for (f, s) in frame.iter_mut().zip(&chunk[..n]) {
                *f = f.saturating_add(*s);
            }
            frame = &mut frame[n..];
            skip = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(from: i16, len: usize) -> Vec<i16> {
        (0..len).map(|i| from + i as i16).collect()
    }

    /// Reads the whole announcement frame by frame, as a member hears it.
    fn play(said: &Announcement, rate: Rate, frame_len: usize) -> Vec<i16> {
        let step = match rate {
            Rate::Wide => frame_len,
            Rate::Narrow => frame_len * 2,
        };
        let mut out = Vec::new();
        let mut at = 0;
        while at < said.len() {
            let mut frame = vec![0i16; frame_len];
            said.overlay(at, rate, &mut frame);
            out.extend_from_slice(&frame);
            at += step;
        }
        out
    }

    #[test]
    fn frames_run_across_clip_boundaries_as_one_sound() {
        let (a, b, c) = (ramp(0, 500), ramp(1000, 322), ramp(2000, 700));
        let said = Announcement::of([
            Clip::new(a.clone()),
            Clip::new(b.clone()),
            Clip::new(c.clone()),
        ]);
        assert_eq!(said.len(), 1522);
        let heard = play(&said, Rate::Wide, 320);
        let whole: Vec<i16> = [a, b, c].concat();
        assert_eq!(&heard[..whole.len()], &whole[..]);
        assert!(
            heard[whole.len()..].iter().all(|s| *s == 0),
            "silence after the end"
        );
    }

    #[test]
    fn the_narrow_copy_follows_each_clip_at_half_the_rate() {
        let (a, b) = (ramp(0, 640), ramp(100, 480));
        let said = Announcement::of([Clip::new(a.clone()), Clip::new(b.clone())]);
        let heard = play(&said, Rate::Narrow, 160);
        let mut whole = Vec::new();
        for part in [a, b] {
            let mut half = Vec::new();
            Halve::default().run(&part, &mut half);
            whole.extend(half);
        }
        assert_eq!(whole.len(), said.len() / 2);
        assert_eq!(&heard[..whole.len()], &whole[..]);
    }

    #[test]
    fn an_odd_clip_is_padded_so_both_rates_stay_in_step() {
        let clip = Clip::new(ramp(1, 321));
        assert_eq!(clip.wide().len(), 322);
        assert_eq!(clip.wide()[321], 0);
        assert_eq!(clip.narrow().len(), 161);
    }

    #[test]
    fn overlay_adds_and_saturates() {
        let said = Announcement::new(vec![30_000i16; 4]);
        let mut frame = [10_000i16, -5, 0, 0, 7, 7];
        said.overlay(0, Rate::Wide, &mut frame);
        assert_eq!(frame, [i16::MAX, 29_995, 30_000, 30_000, 7, 7]);
    }

    #[test]
    fn reading_past_the_end_adds_nothing() {
        let said = Announcement::of([Clip::new(ramp(1, 10)), Clip::default()]);
        let mut frame = [0i16; 8];
        said.overlay(10, Rate::Wide, &mut frame);
        said.overlay(1_000, Rate::Narrow, &mut frame);
        assert_eq!(frame, [0; 8]);
        assert!(Announcement::default().is_empty());
    }
}
