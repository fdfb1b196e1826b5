//! A 2-D size that TOML can write as `336` (square) or `[336, 448]` (`[h, w]`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[h, w]` in pixels; square sizes serialise as a single integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size2 {
    pub h: usize,
    pub w: usize,
}

impl Size2 {
    pub const fn square(s: usize) -> Self {
        Self { h: s, w: s }
    }

    pub const fn hw(&self) -> [usize; 2] {
        [self.h, self.w]
    }
}

impl From<usize> for Size2 {
    fn from(s: usize) -> Self {
        Self::square(s)
    }
}

impl std::fmt::Display for Size2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.h == self.w { write!(f, "{}", self.h) } else { write!(f, "{}x{}", self.h, self.w) }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Square(usize),
    Hw([usize; 2]),
}

impl Serialize for Size2 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.h == self.w {
            Repr::Square(self.h).serialize(s)
        } else {
            Repr::Hw([self.h, self.w]).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::deserialize(d).map_err(|_| serde::de::Error::custom("expected a size: N or [h, w]"))? {
            Repr::Square(s) => Ok(Self::square(s)),
            Repr::Hw([h, w]) => Ok(Self { h, w }),
        }
    }
}
