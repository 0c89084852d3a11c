//! The PC speaker on the host's audio output (cpal).
//!
//! The board records port 0x61 writes with their virtual times; after each
//! slice of guest time, [`ToneSampler`] turns the interval into samples by
//! evaluating the speaker level (data bit AND PIT channel 2's output) four
//! times per output sample and averaging (a box filter against aliasing of
//! high PIT tones), then removes the DC level with a one-pole high-pass so
//! a cone held out is silence, as on the real speaker. Samples go through a
//! queue to the audio callback; when the guest runs ahead of real time the
//! queue is cut to 250 ms, so sound stays in step with the picture.
//!
//! The audio device may be missing (no sound card, no ALSA configuration):
//! then [`Speaker::open`] warns once and the machine runs on silently.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ferrite_core::Nanos;
use ferrite_devices::pc::Pc;

/// Sub-samples averaged per output sample.
const OVERSAMPLE: u64 = 4;
/// Peak amplitude of the speaker signal.
const AMPLITUDE: f32 = 0.2;

/// Speaker level to samples, from virtual time.
pub struct ToneSampler {
    rate: u64,
    /// Virtual time of the next sample, in units of 1/(rate*OVERSAMPLE) s.
    next: u64,
    p61: u8,
    /// High-pass state (previous input and output).
    x1: f32,
    y1: f32,
}

impl ToneSampler {
    pub fn new(rate: u32, now: Nanos, p61: u8) -> ToneSampler {
        let rate = rate.max(1) as u64;
        let sub = rate * OVERSAMPLE;
        let next = (now.0 as u128 * sub as u128 / 1_000_000_000) as u64;
        ToneSampler { rate, next, p61, x1: 0.0, y1: 0.0 }
    }

    /// Append the samples of the time up to `now` to `out`, given the port
    /// 0x61 writes in between (`log`, in time order) and the level
    /// function (`level(t, p61)`).
    pub fn run(&mut self, now: Nanos, log: &[(Nanos, u8)], level: impl Fn(Nanos, u8) -> bool, out: &mut Vec<f32>) {
        let sub = self.rate * OVERSAMPLE;
        let end = (now.0 as u128 * sub as u128 / 1_000_000_000) as u64;
        let mut log = log.iter().peekable();
        while self.next + OVERSAMPLE <= end {
            let mut acc = 0.0f32;
            for k in 0..OVERSAMPLE {
                let t = Nanos(((self.next + k) as u128 * 1_000_000_000 / sub as u128) as u64);
                while let Some(&&(when, v)) = log.peek() {
                    if when > t {
                        break;
                    }
                    self.p61 = v;
                    log.next();
                }
                if level(t, self.p61) {
                    acc += AMPLITUDE;
                }
            }
            let x = acc / OVERSAMPLE as f32;
            let y = x - self.x1 + 0.995 * self.y1;
            self.x1 = x;
            self.y1 = y;
            out.push(y);
            self.next += OVERSAMPLE;
        }
        // Later writes than the last sample still set the state.
        for &(_, v) in log {
            self.p61 = v;
        }
    }
}

/// The open audio output.
pub struct Speaker {
    queue: Arc<Mutex<VecDeque<f32>>>,
    sampler: ToneSampler,
    rate: u32,
    scratch: Vec<f32>,
    _stream: cpal::Stream,
}

impl Speaker {
    /// Open the default output device and start listening to the board's
    /// speaker. None (after one warning) when there is no audio output.
    pub fn open(pc: &mut Pc) -> Option<Speaker> {
        match Self::try_open(pc) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("ferrite: warning: no audio output ({e}); the PC speaker is silent");
                None
            }
        }
    }

    fn try_open(pc: &mut Pc) -> anyhow::Result<Speaker> {
        let host = cpal::default_host();
        let device = host.default_output_device().ok_or_else(|| anyhow::anyhow!("no output device"))?;
        let supported = device.default_output_config()?;
        if supported.sample_format() != cpal::SampleFormat::F32 {
            anyhow::bail!("output format {:?} (only f32 is used)", supported.sample_format());
        }
        let config: cpal::StreamConfig = supported.into();
        let channels = config.channels as usize;
        let rate = config.sample_rate;
        let queue = Arc::new(Mutex::new(VecDeque::<f32>::new()));
        let q = queue.clone();
        let stream = device.build_output_stream(
            config,
            move |data: &mut [f32], _| {
                let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
                for frame in data.chunks_mut(channels.max(1)) {
                    let v = q.pop_front().unwrap_or(0.0);
                    frame.fill(v);
                }
            },
            |e| tracing::warn!("audio: {e}"),
            None,
        )?;
        stream.play()?;
        pc.listen_to_speaker(true);
        let sampler = ToneSampler::new(rate, pc.now(), pc.port61());
        Ok(Speaker { queue, sampler, rate, scratch: Vec::new(), _stream: stream })
    }

    /// Turn the guest time since the last call into samples.
    pub fn feed(&mut self, pc: &mut Pc) {
        let log = pc.take_speaker_log();
        self.scratch.clear();
        self.sampler.run(pc.now(), &log, |t, p61| pc.speaker_level(t, p61), &mut self.scratch);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(self.scratch.iter().copied());
        let max = self.rate as usize / 4;
        if q.len() > max {
            let extra = q.len() - max;
            q.drain(..extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Count sign changes of the high-passed signal.
    fn crossings(s: &[f32]) -> usize {
        s.windows(2).filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0)).count()
    }

    #[test]
    fn a_square_wave_tone_comes_out_at_its_frequency() {
        // A 1 kHz square wave for 100 ms of guest time at 48 kHz.
        let level = |t: Nanos, p61: u8| p61 & 2 != 0 && (t.0 / 500_000).is_multiple_of(2);
        let mut s = ToneSampler::new(48_000, Nanos(0), 3);
        let mut out = Vec::new();
        s.run(Nanos(100_000_000), &[], level, &mut out);
        assert_eq!(out.len(), 4800);
        // Two zero crossings per period: about 200 in 100 ms.
        let c = crossings(&out[480..]);
        assert!((175..=185).contains(&c), "{c} crossings");
    }

    #[test]
    fn speaker_off_is_silence_and_port_writes_switch_it_at_their_time() {
        let level = |t: Nanos, p61: u8| p61 & 2 != 0 && (t.0 / 500_000).is_multiple_of(2);
        let mut s = ToneSampler::new(48_000, Nanos(0), 0);
        let mut out = Vec::new();
        // Off for 50 ms, on from 50 ms.
        s.run(Nanos(100_000_000), &[(Nanos(50_000_000), 3)], level, &mut out);
        assert!(out[..2400].iter().all(|&v| v == 0.0), "silent while off");
        assert!(out[2400..].iter().any(|&v| v.abs() > 0.05), "tone after the write");
        // A held-out cone (data bit steady, gate off) decays to silence.
        let mut s = ToneSampler::new(48_000, Nanos(0), 2);
        let mut out = Vec::new();
        s.run(Nanos(200_000_000), &[], |_, p61| p61 & 2 != 0, &mut out);
        assert!(out.last().unwrap().abs() < 0.001, "DC removed: {}", out.last().unwrap());
    }
}
