//! The data classes, their categories, and the small set type that holds them.

use std::fmt;
use std::str::FromStr;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{UnknownCategory, UnknownDataClass};

/// A kind of sensitive data a value can carry.
///
/// The spellings ([`DataClass::as_str`]) are stable: they are written to audit
/// records (`data_classes`) and inventories, and parsed back. The rule for
/// each class is in the [crate documentation](crate#data-classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataClass {
    /// An e-mail address (`alice@example.com`).
    Email,
    /// A telephone number in E.164 or a formatted national form.
    Phone,
    /// A United States social security number.
    UsSsn,
    /// A payment card number (PAN), Luhn-checked with a known issuer prefix.
    PaymentCard,
    /// An international bank account number, ISO 13616 mod-97 checked.
    Iban,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A date in a field whose name says it is a date of birth.
    DateOfBirth,
    /// A JSON Web Token (signed, three base64url parts).
    Jwt,
    /// A credential: an API key or token of a known format, a private key, or
    /// a high-entropy value in a field named like a secret.
    Secret,
    /// A person's name, by field name (`first_name`, a person's `name`, …).
    PersonName,
    /// A postal address part, by field name (`street`, `postal_code`, `city`, …).
    Address,
}

impl DataClass {
    /// Every class, in declaration order (the order sets iterate in).
    pub const ALL: [DataClass; 12] = [
        DataClass::Email,
        DataClass::Phone,
        DataClass::UsSsn,
        DataClass::PaymentCard,
        DataClass::Iban,
        DataClass::Ipv4,
        DataClass::Ipv6,
        DataClass::DateOfBirth,
        DataClass::Jwt,
        DataClass::Secret,
        DataClass::PersonName,
        DataClass::Address,
    ];

    /// The stable lower-case name: `email`, `phone`, `us_ssn`, `payment_card`,
    /// `iban`, `ipv4`, `ipv6`, `date_of_birth`, `jwt`, `secret`,
    /// `person_name`, `address`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataClass::Email => "email",
            DataClass::Phone => "phone",
            DataClass::UsSsn => "us_ssn",
            DataClass::PaymentCard => "payment_card",
            DataClass::Iban => "iban",
            DataClass::Ipv4 => "ipv4",
            DataClass::Ipv6 => "ipv6",
            DataClass::DateOfBirth => "date_of_birth",
            DataClass::Jwt => "jwt",
            DataClass::Secret => "secret",
            DataClass::PersonName => "person_name",
            DataClass::Address => "address",
        }
    }

    /// The risk category the class belongs to.
    pub const fn category(self) -> Category {
        match self {
            DataClass::Email
            | DataClass::Phone
            | DataClass::UsSsn
            | DataClass::Iban
            | DataClass::DateOfBirth
            | DataClass::PersonName
            | DataClass::Address => Category::Pii,
            DataClass::PaymentCard => Category::Pci,
            DataClass::Jwt | DataClass::Secret => Category::Secret,
            DataClass::Ipv4 | DataClass::Ipv6 => Category::Network,
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts exactly the spellings of [`DataClass::as_str`].
impl FromStr for DataClass {
    type Err = UnknownDataClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataClass::ALL
            .into_iter()
            .find(|class| class.as_str() == s)
            .ok_or_else(|| UnknownDataClass(s.to_owned()))
    }
}

/// What kind of risk a data class carries, for scoring and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// Personal data: identifies or describes a person (GDPR, CCPA). Bank
    /// account numbers (IBAN) are here: PCI DSS covers payment cards only.
    Pii,
    /// Payment card data in the scope of PCI DSS.
    Pci,
    /// Credentials: whoever reads one can act as its owner.
    Secret,
    /// Network locators (IP addresses): personal data in some jurisdictions,
    /// and a map of the infrastructure.
    Network,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 4] = [
        Category::Pii,
        Category::Pci,
        Category::Secret,
        Category::Network,
    ];

    /// The stable lower-case name: `pii`, `pci`, `secret`, `network`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Pci => "pci",
            Category::Secret => "secret",
            Category::Network => "network",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts exactly the spellings of [`Category::as_str`].
impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|category| category.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

/// A set of [`DataClass`]es: a bit set, `Copy`, no allocation.
///
/// Iterates, prints (`email, phone`) and serializes (`["email","phone"]`) in
/// the declaration order of [`DataClass`], so equal sets always look the same.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DataClasses(u16);

impl DataClasses {
    /// The empty set.
    pub const EMPTY: DataClasses = DataClasses(0);

    /// The set holding only `class`.
    pub const fn only(class: DataClass) -> DataClasses {
        DataClasses(class.bit())
    }

    /// Whether the set holds no class.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many classes the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether `class` is in the set.
    pub const fn contains(self, class: DataClass) -> bool {
        self.0 & class.bit() != 0
    }

    /// Adds `class`; returns whether it was not there before.
    pub fn insert(&mut self, class: DataClass) -> bool {
        let added = !self.contains(class);
        self.0 |= class.bit();
        added
    }

    /// Removes `class`; returns whether it was there.
    pub fn remove(&mut self, class: DataClass) -> bool {
        let present = self.contains(class);
        self.0 &= !class.bit();
        present
    }

    /// The classes in either set.
    #[must_use]
    pub const fn union(self, other: DataClasses) -> DataClasses {
        DataClasses(self.0 | other.0)
    }

    /// The classes in both sets.
    #[must_use]
    pub const fn intersection(self, other: DataClasses) -> DataClasses {
        DataClasses(self.0 & other.0)
    }

    /// The classes of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: DataClasses) -> DataClasses {
        DataClasses(self.0 & !other.0)
    }

    /// The classes, in declaration order.
    pub fn iter(self) -> DataClassesIter {
        DataClassesIter { set: self, next: 0 }
    }

    /// The distinct categories of the classes, in declaration order.
    pub fn categories(self) -> impl Iterator<Item = Category> {
        Category::ALL
            .into_iter()
            .filter(move |category| self.iter().any(|class| class.category() == *category))
    }
}

impl From<DataClass> for DataClasses {
    fn from(class: DataClass) -> Self {
        DataClasses::only(class)
    }
}

impl std::ops::BitOr for DataClasses {
    type Output = DataClasses;

    fn bitor(self, rhs: DataClasses) -> DataClasses {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for DataClasses {
    fn bitor_assign(&mut self, rhs: DataClasses) {
        *self = self.union(rhs);
    }
}

impl FromIterator<DataClass> for DataClasses {
    fn from_iter<I: IntoIterator<Item = DataClass>>(iter: I) -> Self {
        let mut set = DataClasses::EMPTY;
        set.extend(iter);
        set
    }
}

impl Extend<DataClass> for DataClasses {
    fn extend<I: IntoIterator<Item = DataClass>>(&mut self, iter: I) {
        for class in iter {
            self.insert(class);
        }
    }
}

impl IntoIterator for DataClasses {
    type Item = DataClass;
    type IntoIter = DataClassesIter;

    fn into_iter(self) -> DataClassesIter {
        self.iter()
    }
}

/// The iterator of [`DataClasses::iter`].
#[derive(Debug, Clone)]
pub struct DataClassesIter {
    set: DataClasses,
    next: usize,
}

impl Iterator for DataClassesIter {
    type Item = DataClass;

    fn next(&mut self) -> Option<DataClass> {
        while let Some(class) = DataClass::ALL.get(self.next).copied() {
            self.next += 1;
            if self.set.contains(class) {
                return Some(class);
            }
        }
        None
    }
}

impl fmt::Debug for DataClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// `email, phone`; nothing for the empty set.
impl fmt::Display for DataClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, class) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(class.as_str())?;
        }
        Ok(())
    }
}

/// A JSON array of class names, e.g. `["email","iban"]`: the shape of the
/// audit record's `data_classes`.
impl Serialize for DataClasses {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for class in self.iter() {
            seq.serialize_element(class.as_str())?;
        }
        seq.end()
    }
}

/// Reads an array of class names; an unknown name is an error, a repeated
/// one is not.
impl<'de> Deserialize<'de> for DataClasses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = DataClasses;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of data class names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DataClasses, A::Error> {
                let mut set = DataClasses::EMPTY;
                while let Some(class) = seq.next_element::<DataClass>()? {
                    set.insert(class);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_serde_spelling() {
        for class in DataClass::ALL {
            assert_eq!(class.as_str().parse::<DataClass>().unwrap(), class);
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::Value::from(class.as_str())
            );
        }
        for category in Category::ALL {
            assert_eq!(category.as_str().parse::<Category>().unwrap(), category);
            assert_eq!(
                serde_json::to_value(category).unwrap(),
                serde_json::Value::from(category.as_str())
            );
        }
        assert_eq!(
            "EMAIL".parse::<DataClass>().unwrap_err().to_string(),
            "unknown data class `EMAIL`"
        );
        assert!("phi".parse::<Category>().is_err());
    }

    #[test]
    fn every_class_has_the_documented_category() {
        let pii: DataClasses = DataClass::ALL
            .into_iter()
            .filter(|c| c.category() == Category::Pii)
            .collect();
        assert_eq!(
            pii.to_string(),
            "email, phone, us_ssn, iban, date_of_birth, person_name, address"
        );
        assert_eq!(DataClass::PaymentCard.category(), Category::Pci);
        assert_eq!(DataClass::Jwt.category(), Category::Secret);
        assert_eq!(DataClass::Secret.category(), Category::Secret);
        assert_eq!(DataClass::Ipv6.category(), Category::Network);
    }

    #[test]
    fn a_set_iterates_in_declaration_order_and_serializes_as_names() {
        let mut set = DataClasses::only(DataClass::Iban);
        assert!(set.insert(DataClass::Email));
        assert!(!set.insert(DataClass::Email));
        set |= DataClass::Secret.into();
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [DataClass::Email, DataClass::Iban, DataClass::Secret]
        );
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["email","iban","secret"]"#);
        assert_eq!(serde_json::from_str::<DataClasses>(&json).unwrap(), set);
        assert!(serde_json::from_str::<DataClasses>(r#"["email","nope"]"#).is_err());
        assert_eq!(
            set.categories().collect::<Vec<_>>(),
            [Category::Pii, Category::Secret]
        );
        assert!(set.remove(DataClass::Iban));
        assert!(!set.contains(DataClass::Iban));
        assert_eq!(format!("{set:?}"), "{Email, Secret}");
        assert!(DataClasses::EMPTY.is_empty());
        assert_eq!(DataClasses::EMPTY.to_string(), "");
        assert_eq!(
            set.difference(DataClass::Email.into()),
            DataClass::Secret.into()
        );
        assert_eq!(
            set.intersection(DataClass::Email.into()),
            DataClass::Email.into()
        );
    }
}
