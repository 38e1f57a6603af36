// SPDX-License-Identifier: GPL-2.0
//! Bit fields of registers and page-table entries.
//!
//! A field is declared once, with the bit range the spec's table gives; its mask, shift and
//! typed accessors all derive from that range, so no mask is ever written out by hand.

/// A range of bits `hi:lo` (inclusive, as the spec writes it) in a register or entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field's name as the spec's table spells it.
    pub name: &'static str,
    pub hi: u32,
    pub lo: u32,
}

impl Field {
    pub const fn new(name: &'static str, hi: u32, lo: u32) -> Self {
        assert!(hi >= lo && hi < 64);
        Self { name, hi, lo }
    }

    pub const fn width(self) -> u32 {
        self.hi - self.lo + 1
    }

    pub const fn shift(self) -> u32 {
        self.lo
    }

    /// The field's bits in place, in a 64-bit word.
    pub const fn mask(self) -> u64 {
        (u64::MAX >> (63 - (self.hi - self.lo))) << self.lo
    }

    /// The field's bits in place, in a 32-bit register. Only meaningful for fields below bit
    /// 32, which every register field is (checked by the declaring macro).
    pub const fn mask32(self) -> u32 {
        self.mask() as u32
    }

    /// The field's value in `word`, shifted down.
    pub const fn get(self, word: u64) -> u64 {
        (word & self.mask()) >> self.lo
    }

    /// `word` with the field replaced by `value`; bits of `value` beyond the field's width are
    /// dropped, as the hardware drops them.
    pub const fn put(self, word: u64, value: u64) -> u64 {
        (word & !self.mask()) | ((value << self.lo) & self.mask())
    }

    /// `value` placed in the field of an otherwise zero 32-bit register.
    pub const fn place32(self, value: u32) -> u32 {
        self.put(0, value as u64) as u32
    }
}

/// Declares a register or entry layout: a transparent newtype over the raw word, one
/// [`Field`] constant per field, `FIELDS` listing them, and a typed getter and `with_`
/// builder per field. `bool` fields are one bit wide.
macro_rules! bitfield {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($raw:ident) {
            $(
                $(#[$fmeta:meta])*
                $hi:literal : $lo:literal $FIELD:ident => $get:ident, $set:ident : $fty:tt;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        #[repr(transparent)]
        $vis struct $name(pub $raw);

        impl $name {
            $(
                $(#[$fmeta])*
                pub const $FIELD: $crate::bits::Field =
                    $crate::bits::Field::new(stringify!($FIELD), $hi, $lo);
            )*

            /// Every field, in declaration order.
            pub const FIELDS: &'static [$crate::bits::Field] = &[$(Self::$FIELD),*];

            pub const fn from_bits(raw: $raw) -> Self {
                Self(raw)
            }

            pub const fn bits(self) -> $raw {
                self.0
            }

            $(
                pub const fn $get(self) -> $fty {
                    bitfield!(@get $fty, Self::$FIELD.get(self.0 as u64))
                }

                #[must_use]
                pub const fn $set(self, value: $fty) -> Self {
                    Self(Self::$FIELD.put(self.0 as u64, value as u64) as $raw)
                }
            )*
        }

        // Fields must fit the word and must not overlap.
        const _: () = {
            let fields = $name::FIELDS;
            let mut seen = 0u64;
            let mut i = 0;
            while i < fields.len() {
                assert!(fields[i].hi < $raw::BITS);
                assert!(seen & fields[i].mask() == 0);
                seen |= fields[i].mask();
                i += 1;
            }
        };

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let mut s = f.debug_struct(stringify!($name));
                $( s.field(stringify!($get), &self.$get()); )*
                s.finish()
            }
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $raw {
            fn from(v: $name) -> $raw {
                v.0
            }
        }
    };
    (@get bool, $e:expr) => {
        $e != 0
    };
    (@get $t:ty, $e:expr) => {
        $e as $t
    };
}

/// Declares an enum of values a field or command carries, with its numbering, the spec's name
/// of each value, `ALL`, and a checked conversion from the raw value.
macro_rules! spec_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $raw:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $spec:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($raw)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every value, in the spec's order.
            pub const ALL: [$name; [$(stringify!($variant)),*].len()] = [$($name::$variant),*];

            /// The value's name as the spec's table spells it.
            pub const fn spec_name(self) -> &'static str {
                match self {
                    $( $name::$variant => $spec, )*
                }
            }

            pub const fn raw(self) -> $raw {
                self as $raw
            }

            /// The value `raw` stands for, if the spec defines it.
            pub const fn from_raw(raw: $raw) -> Option<Self> {
                match raw {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Field;

    #[test]
    fn masks_follow_the_range() {
        assert_eq!(Field::new("X", 0, 0).mask(), 1);
        assert_eq!(Field::new("X", 15, 8).mask(), 0xff00);
        assert_eq!(Field::new("X", 63, 0).mask(), u64::MAX);
        assert_eq!(Field::new("X", 51, 12).mask(), 0x000f_ffff_ffff_f000);
        let f = Field::new("X", 11, 8);
        assert_eq!(f.get(0xabcd), 0xb);
        assert_eq!(f.put(0xffff, 0x12), 0xf2ff);
        assert_eq!(f.place32(3), 0x300);
    }
}
