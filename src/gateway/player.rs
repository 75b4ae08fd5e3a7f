//! Prompt playback for one leg: a queue of prompts read out 20 ms at a time.

use crate::ivr::PlayId;
use crate::media::pcm::PCM_FRAME;
use crate::media::prompts::{PromptId, PromptSet};

#[derive(Debug, Default)]
pub struct Player {
    current: Option<(PlayId, Vec<PromptId>)>,
    index: usize,
    offset: usize,
}

impl Player {
    pub fn play(&mut self, id: PlayId, prompts: Vec<PromptId>) {
        self.current = Some((id, prompts));
        self.index = 0;
        self.offset = 0;
    }

    pub fn stop(&mut self) {
        self.current = None;
    }

    /// The next frame into `frame` (silence-padded), or the id of the play
    /// that just finished (`Err`), or `Ok(false)` when idle.
    pub fn next_frame(
        &mut self,
        prompts: &PromptSet,
        frame: &mut [i16; PCM_FRAME],
    ) -> Result<bool, PlayId> {
        let Some((id, list)) = &self.current else {
            return Ok(false);
        };
        let mut filled = 0;
        while filled < PCM_FRAME {
            let Some(prompt) = list.get(self.index) else {
                break;
            };
            let samples = prompts.get(*prompt);
            let take = (samples.len() - self.offset.min(samples.len())).min(PCM_FRAME - filled);
            frame[filled..filled + take].copy_from_slice(&samples[self.offset..self.offset + take]);
            filled += take;
            self.offset += take;
            if self.offset >= samples.len() {
                self.index += 1;
                self.offset = 0;
            }
        }
        if filled == 0 {
            let id = *id;
            self.current = None;
            return Err(id);
        }
        frame[filled..].fill(0);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_prompts_back_to_back_then_reports_done_once() {
        let prompts = PromptSet::from_samples([
            (PromptId::Welcome, vec![1; 400]),
            (PromptId::Goodbye, vec![2; 260]),
        ]);
        let mut p = Player::default();
        p.play(PlayId(4), vec![PromptId::Welcome, PromptId::Goodbye]);
        let mut f = [0; PCM_FRAME];
        assert_eq!(p.next_frame(&prompts, &mut f), Ok(true));
        assert!(f.iter().all(|s| *s == 1));
        assert_eq!(p.next_frame(&prompts, &mut f), Ok(true));
        assert_eq!(&f[..80], &[1; 80]);
        assert_eq!(&f[80..320], &[2; 240]);
        assert_eq!(p.next_frame(&prompts, &mut f), Ok(true));
        assert_eq!(&f[..20], &[2; 20]);
        assert_eq!(&f[20..], &[0; 300]);
        assert_eq!(p.next_frame(&prompts, &mut f), Err(PlayId(4)));
        assert_eq!(p.next_frame(&prompts, &mut f), Ok(false));
    }
}
