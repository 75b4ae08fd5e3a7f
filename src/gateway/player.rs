//! Prompt playback for one leg: a queue of prompts read out 20 ms at a time
//! as frames of the prompts ([`Player::next_prompt_frame`]), which the leg
//! sends as payloads encoded once for every call (see
//! [`crate::media::prompts::encoded`]).

use crate::ivr::PlayId;
use crate::media::pcm::PCM_FRAME;
use crate::media::prompts::{PromptFrame, PromptId, PromptSet};

#[derive(Debug, Default)]
pub struct Player {
    current: Option<(PlayId, Vec<PromptId>)>,
    index: usize,
    offset: usize,
    /// The play starts again at its end instead of ending.
    looped: bool,
}

impl Player {
    pub fn play(&mut self, id: PlayId, prompts: Vec<PromptId>) {
        self.current = Some((id, prompts));
        self.index = 0;
        self.offset = 0;
        self.looped = false;
    }

    /// Plays `prompts` over and over until stopped or replaced: its end is
    /// never reported.
    pub fn play_looped(&mut self, id: PlayId, prompts: Vec<PromptId>) {
        self.play(id, prompts);
        self.looped = true;
    }

    pub fn stop(&mut self) {
        self.current = None;
    }

    /// The play under way, if any.
    pub fn playing(&self) -> Option<PlayId> {
        self.current.as_ref().map(|(id, _)| *id)
    }

    /// The next 20 ms: a frame of the prompt playing (`Ok(Some)`, for
    /// [`crate::media::leg::Leg::send_prompt`]), or the id of the play that
    /// just finished (`Err`, once), or `Ok(None)` when idle. Each prompt
    /// starts on a frame of its own: its last frame is padded with silence
    /// rather than filled from the next prompt.
    pub fn next_prompt_frame(
        &mut self,
        prompts: &PromptSet,
    ) -> Result<Option<PromptFrame>, PlayId> {
        let Some((id, list)) = &self.current else {
            return Ok(None);
        };
        // A looped play goes round once more from its start; one with no
        // frame at all is silence, not a busy loop.
        for _ in 0..=usize::from(self.looped) {
            while let Some(prompt) = list.get(self.index) {
                // `offset` counts samples; here it stays on a frame boundary.
                let index = self.offset / PCM_FRAME;
                if index < prompts.frame_count(*prompt) {
                    self.offset = (index + 1) * PCM_FRAME;
                    return Ok(Some(PromptFrame {
                        prompt: *prompt,
                        index,
                    }));
                }
                self.index += 1;
                self.offset = 0;
            }
            if self.looped {
                self.index = 0;
            }
        }
        if self.looped {
            return Ok(None);
        }
        let id = *id;
        self.current = None;
        Err(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(prompt: PromptId, index: usize) -> Result<Option<PromptFrame>, PlayId> {
        Ok(Some(PromptFrame { prompt, index }))
    }

    #[test]
    fn prompt_frames_play_back_to_back_each_prompt_padded_then_done_once_then_idle() {
        let prompts = PromptSet::from_samples([
            (PromptId::Welcome, vec![1; 400]),
            (PromptId::Goodbye, vec![2; 640]),
        ]);
        let mut p = Player::default();
        assert_eq!(
            p.next_prompt_frame(&prompts),
            Ok(None),
            "idle before a play"
        );
        p.play(PlayId(4), vec![PromptId::Welcome, PromptId::Goodbye]);
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Welcome, 0));
        // Welcome's last 80 samples have a frame of their own.
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Welcome, 1));
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Goodbye, 0));
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Goodbye, 1));
        assert_eq!(p.next_prompt_frame(&prompts), Err(PlayId(4)));
        assert_eq!(p.next_prompt_frame(&prompts), Ok(None));
        assert_eq!(p.next_prompt_frame(&prompts), Ok(None));
    }

    #[test]
    fn empty_prompts_are_skipped_and_a_play_of_nothing_is_done_at_once() {
        let prompts = PromptSet::from_samples([(PromptId::Goodbye, vec![2; 10])]);
        let mut p = Player::default();
        p.play(
            PlayId(1),
            vec![PromptId::Welcome, PromptId::Goodbye, PromptId::Joining],
        );
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Goodbye, 0));
        assert_eq!(p.next_prompt_frame(&prompts), Err(PlayId(1)));
        p.play(PlayId(2), vec![PromptId::Welcome]);
        assert_eq!(p.next_prompt_frame(&prompts), Err(PlayId(2)));
        p.play(PlayId(3), vec![]);
        assert_eq!(p.next_prompt_frame(&prompts), Err(PlayId(3)));
        assert_eq!(p.next_prompt_frame(&prompts), Ok(None));
    }

    #[test]
    fn a_stopped_play_reports_no_done_and_a_new_play_starts_from_its_first_frame() {
        let prompts = PromptSet::from_samples([
            (PromptId::Welcome, vec![1; 960]),
            (PromptId::Goodbye, vec![2; 320]),
        ]);
        let mut p = Player::default();
        p.play(PlayId(1), vec![PromptId::Welcome]);
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Welcome, 0));
        p.stop();
        assert_eq!(p.next_prompt_frame(&prompts), Ok(None), "barge-in: no done");
        p.play(PlayId(2), vec![PromptId::Welcome]);
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Welcome, 0));
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Welcome, 1));
        p.play(PlayId(3), vec![PromptId::Goodbye]);
        assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Goodbye, 0));
        assert_eq!(
            p.next_prompt_frame(&prompts),
            Err(PlayId(3)),
            "play 2 is never done"
        );
    }

    #[test]
    fn a_looped_play_starts_again_at_its_end_and_never_reports_one() {
        let prompts = PromptSet::from_samples([(PromptId::Moving, vec![3; 400])]);
        let mut p = Player::default();
        p.play_looped(PlayId(9), vec![PromptId::Moving]);
        for _ in 0..3 {
            assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Moving, 0));
            assert_eq!(p.next_prompt_frame(&prompts), frame(PromptId::Moving, 1));
        }
        // A looped play of nothing is silence.
        p.play_looped(PlayId(10), vec![PromptId::Welcome]);
        assert_eq!(p.next_prompt_frame(&prompts), Ok(None));
        assert_eq!(p.playing(), Some(PlayId(10)));
        // A plain play after it ends as plays do.
        p.play(PlayId(11), vec![PromptId::Moving]);
        p.next_prompt_frame(&prompts).unwrap();
        p.next_prompt_frame(&prompts).unwrap();
        assert_eq!(p.next_prompt_frame(&prompts), Err(PlayId(11)));
    }
}
