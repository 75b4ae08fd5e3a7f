//! G.711 (ITU-T G.711) μ-law and A-law for 20 ms frames at 8 kHz.

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The two G.711 companding laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// μ-law (PCMU).
    Mu,
    /// A-law (PCMA).
    A,
}

pub fn encode(law: Law, pcm: &[i16], out: &mut Vec<u8>) {
    out.clear();
    match law {
        Law::Mu => out.extend(pcm.iter().map(|s| audio_codec_algorithms::encode_ulaw(*s))),
        Law::A => out.extend(pcm.iter().map(|s| audio_codec_algorithms::encode_alaw(*s))),
    }
}

pub fn decode(law: Law, payload: &[u8], out: &mut Vec<i16>) {
    out.clear();
    match law {
        Law::Mu => out.extend(
            payload
                .iter()
                .map(|b| audio_codec_algorithms::decode_ulaw(*b)),
        ),
        Law::A => out.extend(
            payload
                .iter()
                .map(|b| audio_codec_algorithms::decode_alaw(*b)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_table_vectors() {
        // ITU-T G.711 Table 2a/1a: 0 encodes to 0xFF (μ) and 0xD5 (A).
        let mut out = Vec::new();
        encode(Law::Mu, &[0], &mut out);
        assert_eq!(out, vec![0xFF]);
        encode(Law::A, &[0], &mut out);
        assert_eq!(out, vec![0xD5]);
        let mut pcm = Vec::new();
        decode(Law::Mu, &[0x80], &mut pcm);
        assert_eq!(pcm, vec![32124]);
        decode(Law::A, &[0xAA], &mut pcm);
        assert_eq!(pcm, vec![32256]);
    }

    #[test]
    fn round_trip_error_is_small() {
        for codec in [Law::Mu, Law::A] {
            let pcm: Vec<i16> = (-32000..32000).step_by(97).map(|x| x as i16).collect();
            let (mut enc, mut dec) = (Vec::new(), Vec::new());
            encode(codec, &pcm, &mut enc);
            decode(codec, &enc, &mut dec);
            for (a, b) in pcm.iter().zip(&dec) {
                let err = (i32::from(*a) - i32::from(*b)).abs();
                assert!(
                    err <= (i32::from(*a).abs() / 16).max(16),
                    "{codec:?} {a} -> {b}"
                );
            }
        }
    }
}
