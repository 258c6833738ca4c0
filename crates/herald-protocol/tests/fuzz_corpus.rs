//! The fuzz targets' checks on stable Rust: every seed of `fuzz/seeds/`, and
//! many thousands of deterministic mutations of them (bit flips, byte
//! changes, cuts, splices, repeats), through the same functions `cargo fuzz`
//! runs. A bounded, repeatable stand-in for a fuzzing session in CI.

use std::path::Path;

use herald_protocol::fuzzing;

/// Mutated inputs per target.
const CASES: usize = 20_000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("seed"))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A small, fixed-seed generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the protocols care about, so mutations hit interesting paths.
const INTERESTING: &[u8] = b"\r\n \t*$:+-#%>.0123456789{}\"\x00\x10\x20\x30\x82\xff";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(data.len() + 1);
                data.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if !data.is_empty() => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.extend_from_slice(&other[from..]);
            }
            5 if !data.is_empty() => {
                let from = rng.below(data.len());
                let to = from + rng.below(data.len() - from + 1);
                let piece = data[from..to].to_vec();
                data.splice(to..to, piece);
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    data.push(rng.next() as u8);
                }
            }
        }
    }
    // The first byte picks where the input is cut into two reads.
    data.insert(0, rng.next() as u8);
    data
}

fn exercise(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    for seed in &seeds {
        for cut in [0u8, 1, 7, 255] {
            let mut input = vec![cut];
            input.extend_from_slice(seed);
            check(&input);
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..CASES {
        check(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn nats_parsers_survive_the_corpus_and_its_mutations() {
    exercise("nats_parse", fuzzing::nats::check_input);
}

#[test]
fn resp_parsers_survive_the_corpus_and_its_mutations() {
    exercise("resp_parse", fuzzing::resp::check_input);
}

#[test]
fn mqtt_decoders_survive_the_corpus_and_its_mutations() {
    exercise("mqtt_parse", fuzzing::mqtt::check_input);
}
