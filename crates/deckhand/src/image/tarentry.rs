//! Tar entries encoded byte for byte as the Docker CLI's Go `archive/tar` writer encodes a build
//! context: ustar headers, preceded by a PAX extended header when a field does not fit ustar.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

/// Size of a tar block; headers and padded data come in whole blocks.
pub const BLOCK: usize = 512;

/// Largest value an octal field of `width` bytes holds (one byte is kept for the NUL).
fn fits_octal(width: usize, x: i128) -> bool {
    x >= 0 && (width >= 22 || x < 1i128 << ((width - 1) * 3))
}

/// What an entry is, as the tar type flag says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One archive member as Docker describes it: owned by root with no user or group names, the
/// mtime in whole seconds, no access or change time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path in the archive, `/`-separated, directories ending in `/`.
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Symlink target, or the first path of a hard link.
    pub link: Vec<u8>,
    /// Permission bits with setuid, setgid and sticky; no file type bits.
    pub mode: u32,
    /// Bytes of data that follow the header (regular files only).
    pub size: u64,
    /// Seconds since the epoch; may be negative or beyond what ustar holds.
    pub mtime: i64,
    pub dev_major: u64,
    pub dev_minor: u64,
}

// File type bits of `st_mode`.
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

/// The entry for a file from its `lstat` fields, or `None` for what Docker does not send (a
/// socket). `name` is the archive path without the trailing `/` of a directory.
pub fn entry_for(
    name: &[u8],
    st_mode: u32,
    rdev: u64,
    mtime: i64,
    len: u64,
    link: Vec<u8>,
) -> Option<Entry> {
    let kind = match st_mode & S_IFMT {
        S_IFREG => Kind::Regular,
        S_IFDIR => Kind::Directory,
        S_IFLNK => Kind::Symlink,
        S_IFCHR => Kind::CharDevice,
        S_IFBLK => Kind::BlockDevice,
        S_IFIFO => Kind::Fifo,
        S_IFSOCK => return None,
        _ => return None,
    };
    let mut name = name.to_vec();
    if kind == Kind::Directory && name.last() != Some(&b'/') {
        name.push(b'/');
    }
    // Docker reads the device numbers whenever either device bit is set, so for a directory or
    // a symlink too (whose `rdev` is 0 on Linux).
    let (dev_major, dev_minor) = if st_mode & (S_IFBLK | S_IFCHR) != 0 {
        (dev_major(rdev), dev_minor(rdev))
    } else {
        (0, 0)
    };
    Some(Entry {
        name,
        kind,
        link: if kind == Kind::Symlink {
            link
        } else {
            Vec::new()
        },
        mode: st_mode & 0o7777,
        size: if kind == Kind::Regular { len } else { 0 },
        mtime,
        dev_major,
        dev_minor,
    })
}

/// Linux's split of a device number into its major half.
pub fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)
}

/// Linux's split of a device number into its minor half.
pub fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & 0xffff_ff00)
}

/// Why an entry cannot be written in the format Docker uses; Docker logs and skips such files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable(pub &'static str);

/// The header blocks of `entry`: one ustar block, or a PAX extended header (its own block and
/// its padded records) followed by the ustar block.
pub fn encode(entry: &Entry) -> Result<Vec<u8>, Unencodable> {
    if !fits_octal(8, entry.mode.into()) {
        return Err(Unencodable("its mode does not fit a tar header"));
    }
    if !fits_octal(8, entry.dev_major.into()) || !fits_octal(8, entry.dev_minor.into()) {
        return Err(Unencodable("its device numbers do not fit a tar header"));
    }
    let mut records: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut ustar = true;
    if !entry.name.is_ascii() || entry.name.len() > 100 {
        records.insert("path", entry.name.clone());
        ustar &= split_ustar_path(&entry.name).is_some();
    }
    if !entry.link.is_ascii() || entry.link.len() > 100 {
        records.insert("linkpath", entry.link.clone());
        ustar = false;
    }
    if !fits_octal(12, entry.size.into()) {
        records.insert("size", entry.size.to_string().into_bytes());
        ustar = false;
    }
    if !fits_octal(12, entry.mtime.into()) {
        records.insert("mtime", entry.mtime.to_string().into_bytes());
        ustar = false;
    }

    if ustar {
        let (prefix, name) = split_ustar_path(&entry.name).unwrap_or((&[], &entry.name));
        let mut block = main_block(entry, name, &entry.link);
        put_str(&mut block[345..500], prefix);
        finish_block(&mut block);
        return Ok(block.to_vec());
    }

    let data: Vec<u8> = records
        .iter()
        .flat_map(|(key, value)| pax_record(key, value))
        .collect();
    let mut out = Vec::with_capacity(3 * BLOCK + data.len());
    let mut xheader = [0u8; BLOCK];
    let mut xname = to_ascii(&pax_header_name(&entry.name));
    xname.truncate(100);
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    put_str(&mut xheader[0..100], &xname);
    put_octal(&mut xheader[100..108], 0);
    put_octal(&mut xheader[108..116], 0);
    put_octal(&mut xheader[116..124], 0);
    put_octal(&mut xheader[124..136], data.len() as i128);
    put_octal(&mut xheader[136..148], 0);
    xheader[156] = b'x';
    finish_block(&mut xheader);
    out.extend_from_slice(&xheader);
    out.extend_from_slice(&data);
    out.resize(out.len() + padding(data.len() as u64), 0);

    // The ustar block keeps what fits; names are cut to their ASCII bytes, numbers that do
    // not fit are written as 0, and the name is not split into a prefix.
    let mut block = main_block(entry, &to_ascii(&entry.name), &to_ascii(&entry.link));
    finish_block(&mut block);
    out.extend_from_slice(&block);
    Ok(out)
}

fn main_block(entry: &Entry, name: &[u8], link: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[156] = entry.kind.flag();
    put_str(&mut block[0..100], name);
    put_str(&mut block[157..257], link);
    put_octal(&mut block[100..108], entry.mode.into());
    put_octal(&mut block[108..116], 0); // uid
    put_octal(&mut block[116..124], 0); // gid
    put_octal(&mut block[124..136], entry.size.into());
    put_octal(&mut block[136..148], entry.mtime.into());
    // User and group names stay empty.
    put_octal(&mut block[329..337], entry.dev_major.into());
    put_octal(&mut block[337..345], entry.dev_minor.into());
    block
}

/// Sets the ustar magic and version, then the checksum (six octal digits, NUL, space).
fn finish_block(block: &mut [u8; BLOCK]) {
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    put_octal(&mut block[148..155], sum.into());
    block[155] = b' ';
}

/// Writes `x` in octal with leading zeros and a trailing NUL; a value that does not fit is
/// written as 0 (the PAX record then carries it).
fn put_octal(field: &mut [u8], x: i128) {
    let x = if fits_octal(field.len(), x) { x } else { 0 };
    let digits = format!("{x:o}");
    let text = format!("{digits:0>width$}", width = field.len() - 1);
    put_str(field, text.as_bytes());
}

/// Copies `s` into `field`, NUL-terminated if there is room. When `s` is cut, a `/` left
/// at the field's end is dropped, so readers do not take a file for a directory.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
    if s.len() > field.len() && field[field.len() - 1] == b'/' {
        let kept = &s[..field.len() - 1];
        let end = kept.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        field[end] = 0;
    }
}

/// Splits a long ASCII path into ustar's 155-byte prefix and 100-byte name at a `/`, if it can
/// be; paths that fit the name field are not split.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    } else if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let suffix_len = name.len() - i - 1;
    if i == 0 || suffix_len > 100 || suffix_len == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// One PAX record, `<length> <key>=<value>\n`, the length counting its own digits.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if base + size.to_string().len() != size {
        size = base + size.to_string().len();
    }
    let mut record = format!("{size} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Name of the extended header of `name`: `PaxHeaders.0` inserted before its last component.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let split = name.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(split);
    let dir = &dir[..dir.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1)];
    let mut out = Vec::with_capacity(name.len() + 14);
    for part in [dir, b"PaxHeaders.0".as_slice(), file] {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    out
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&b| b != 0 && b < 0x80).collect()
}

fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Writes entries and the closing two zero blocks, as Go's tar writer does (no padding of the
/// archive to a record size).
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes `entry`'s headers and exactly `entry.size` bytes from `data`, padded to a block.
    /// An entry that cannot be encoded is left out, reported by `Ok(false)`.
    pub fn append(&mut self, entry: &Entry, data: impl Read) -> io::Result<bool> {
        let header = match encode(entry) {
            Ok(header) => header,
            Err(Unencodable(why)) => {
                tracing::warn!(
                    "{} is not sent: {why}, as with docker build",
                    String::from_utf8_lossy(&entry.name)
                );
                return Ok(false);
            }
        };
        self.out.write_all(&header)?;
        let copied = io::copy(&mut data.take(entry.size), &mut self.out)?;
        if copied != entry.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {} bytes were promised but {copied} could be read",
                    String::from_utf8_lossy(&entry.name),
                    entry.size
                ),
            ));
        }
        self.out.write_all(&[0u8; BLOCK][..padding(entry.size)])?;
        Ok(true)
    }

    /// Ends the archive and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: Kind) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind,
            link: Vec::new(),
            mode: 0o644,
            size: 0,
            mtime: 1_700_000_000,
            dev_major: 0,
            dev_minor: 0,
        }
    }

    fn field(block: &[u8], range: std::ops::Range<usize>) -> &[u8] {
        &block[range]
    }

    #[test]
    fn octal_fields_fit_their_width() {
        for (width, x, fits) in [
            (8, 0o7777777, true),
            (8, 0o10000000, false),
            (12, 0o77777777777, true),
            (12, 0o100000000000, false),
            (12, -1, false),
            (22, i128::from(u64::MAX), true),
        ] {
            assert_eq!(fits_octal(width, x), fits, "{width} {x}");
        }
    }

    #[test]
    fn octal_fields_are_zero_padded_and_nul_terminated() {
        for (width, x, want) in [
            (8, 0o644, &b"0000644\0"[..]),
            (12, 5, b"00000000005\0"),
            (12, -315_619_200, b"00000000000\0"),
            (7, 0o4567, b"004567\0"),
        ] {
            let mut f = vec![0xffu8; width];
            put_octal(&mut f, x);
            assert_eq!(f, want, "{x}");
        }
    }

    #[test]
    fn strings_cut_at_a_slash_lose_the_slash() {
        for (s, want) in [
            (&b"ab"[..], &b"ab\0\0"[..]),
            (b"abcd", b"abcd"),
            (b"abc/x", b"abc\0"),
            (b"ab//x", b"ab\0/"),
            (b"ab/x", b"ab/x"),
        ] {
            let mut f = vec![0u8; 4];
            put_str(&mut f, s);
            assert_eq!(f, want, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn long_paths_split_at_a_slash_when_both_halves_fit() {
        let d = "d".repeat(120);
        for (name, want) in [
            ("short/name".to_string(), None),
            (format!("{d}/file"), Some((d.clone(), "file"))),
            // A directory's trailing slash stays with the name half.
            (format!("{d}/sub/"), Some((d.clone(), "sub/"))),
            (format!("a/{}", "n".repeat(101)), None),
            (format!("{}/f", "p".repeat(156)), None),
            ("x".repeat(101), None),
            (format!("/{}", "x".repeat(100)), None),
        ] {
            let got = split_ustar_path(name.as_bytes())
                .map(|(p, n)| (String::from_utf8_lossy(p).into_owned(), n.to_vec()));
            let want = want.map(|(p, n)| (p, n.as_bytes().to_vec()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for (key, value, want) in [
            ("mtime", "-315619200", "20 mtime=-315619200\n"),
            ("path", "a", "9 path=a\n"),
            // 3 + 4 + 1 + 1 + 1 = 10 bytes, plus a length of two digits: 12.
            ("path", "abc", "12 path=abc\n"),
            (
                "path",
                &"x".repeat(93),
                &format!("103 path={}\n", "x".repeat(93)),
            ),
            // 98 bytes plus two digits would be 100, which takes three: 101.
            (
                "path",
                &"x".repeat(91),
                &format!("101 path={}\n", "x".repeat(91)),
            ),
        ] {
            let got = pax_record(key, value.as_bytes());
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
    }

    #[test]
    fn pax_header_names_sit_beside_the_file() {
        for (name, want) in [
            ("f", "PaxHeaders.0/f"),
            ("a/b/f", "a/b/PaxHeaders.0/f"),
            ("a/b/", "a/b/PaxHeaders.0"),
        ] {
            assert_eq!(pax_header_name(name.as_bytes()), want.as_bytes(), "{name}");
        }
    }

    #[test]
    fn lstat_fields_decide_the_entry() {
        let rdev = (8 << 8) | 1; // 8:1
        for (st_mode, kind, mode, size, dev) in [
            (0o100644, Some(Kind::Regular), 0o644, 10, (0, 0)),
            (0o104755, Some(Kind::Regular), 0o4755, 10, (0, 0)),
            // Docker reads the numbers for these too, as their type bits overlap a device's.
            (0o041777, Some(Kind::Directory), 0o1777, 0, (8, 1)),
            (0o120777, Some(Kind::Symlink), 0o777, 0, (8, 1)),
            (0o010600, Some(Kind::Fifo), 0o600, 0, (0, 0)),
            (0o020666, Some(Kind::CharDevice), 0o666, 0, (8, 1)),
            (0o060660, Some(Kind::BlockDevice), 0o660, 0, (8, 1)),
            (0o140755, None, 0, 0, (0, 0)),
        ] {
            let got = entry_for(b"x", st_mode, rdev, 0, 10, b"t".to_vec());
            assert_eq!(got.as_ref().map(|e| e.kind), kind, "{st_mode:o}");
            if let Some(e) = got {
                assert_eq!(
                    (e.mode, e.size, (e.dev_major, e.dev_minor)),
                    (mode, size, dev),
                    "{st_mode:o}"
                );
                assert_eq!(
                    e.name,
                    if kind == Some(Kind::Directory) {
                        &b"x/"[..]
                    } else {
                        b"x"
                    }
                );
                assert_eq!(e.link.is_empty(), kind != Some(Kind::Symlink));
            }
        }
    }

    #[test]
    fn device_numbers_split_as_linux_packs_them() {
        for (dev, major, minor) in [
            ((8u64 << 8) | 1, 8, 1),
            (0, 0, 0),
            // major 300, minor 70000: both spill into the high bits.
            (
                (300 & 0xfff) << 8 | (70000 & 0xff) | ((70000 & !0xff) << 12),
                300,
                70000,
            ),
        ] {
            assert_eq!((dev_major(dev), dev_minor(dev)), (major, minor), "{dev:x}");
        }
    }

    #[test]
    fn a_plain_entry_is_one_ustar_block() {
        let mut e = entry("src/main.rs", Kind::Regular);
        e.size = 12;
        let block = encode(&e).unwrap();
        assert_eq!(block.len(), BLOCK);
        assert_eq!(field(&block, 0..12), b"src/main.rs\0");
        assert_eq!(field(&block, 100..108), b"0000644\0");
        assert_eq!(field(&block, 108..124), b"0000000\x000000000\0");
        assert_eq!(field(&block, 124..136), b"00000000014\0");
        assert_eq!(field(&block, 136..148), b"14524770400\0");
        assert_eq!(block[156], b'0');
        assert_eq!(field(&block, 257..265), b"ustar\x0000");
        assert_eq!(field(&block, 265..270), b"\0\0\0\0\0");
        assert_eq!(field(&block, 329..345), b"0000000\x000000000\0");
        // The checksum is six digits, NUL, space, and the tar crate agrees with it.
        assert_eq!(&block[154..156], b"\0 ");
        let parsed = tar::Header::from_byte_slice(&block);
        let mut check = parsed.clone();
        check.set_cksum();
        assert_eq!(check.cksum().unwrap(), parsed.cksum().unwrap());
    }

    #[test]
    fn times_outside_ustar_go_in_a_pax_mtime_record() {
        for (mtime, record) in [
            (-315_619_200i64, "20 mtime=-315619200\n"),
            (10_413_792_000, "21 mtime=10413792000\n"),
        ] {
            let mut e = entry("old.txt", Kind::Regular);
            e.mtime = mtime;
            let out = encode(&e).unwrap();
            assert_eq!(out.len(), 3 * BLOCK);
            assert_eq!(field(&out, 0..21), b"PaxHeaders.0/old.txt\0");
            assert_eq!(out[156], b'x');
            assert_eq!(
                field(&out, 124..136),
                format!("{:011o}\0", record.len()).as_bytes()
            );
            assert_eq!(&out[BLOCK..BLOCK + record.len()], record.as_bytes());
            let main = &out[2 * BLOCK..];
            assert_eq!(field(main, 0..8), b"old.txt\0");
            assert_eq!(field(main, 136..148), b"00000000000\0");
            assert_eq!(main[156], b'0');
        }
        let mut edge = entry("edge", Kind::Regular);
        edge.mtime = 0o77777777777;
        assert_eq!(encode(&edge).unwrap().len(), BLOCK);
        edge.mtime = 0;
        assert_eq!(encode(&edge).unwrap().len(), BLOCK);
    }

    #[test]
    fn names_ustar_cannot_hold_go_in_a_pax_path_record() {
        // Not ASCII: PAX, with the ustar name keeping only the ASCII bytes.
        let e = Entry {
            name: b"caf\xc3\xa9.txt".to_vec(),
            ..entry("", Kind::Regular)
        };
        let out = encode(&e).unwrap();
        assert_eq!(&out[BLOCK..BLOCK + 18], b"18 path=caf\xc3\xa9.txt\n");
        assert_eq!(field(&out[2 * BLOCK..], 0..8), b"caf.txt\0");
        // Long but splittable: plain ustar with a prefix.
        let long = format!("{}/file.txt", "d".repeat(120));
        let out = encode(&entry(&long, Kind::Regular)).unwrap();
        assert_eq!(out.len(), BLOCK);
        assert_eq!(field(&out, 0..9), b"file.txt\0");
        assert_eq!(&out[345..465], "d".repeat(120).as_bytes());
        // Long and splittable, but PAX for its time: the path record comes along.
        let mut e = entry(&long, Kind::Regular);
        e.mtime = -1;
        let out = encode(&e).unwrap();
        let records = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(records.starts_with("12 mtime=-1\n139 path=d"), "{records}");
        assert_eq!(field(&out[2 * BLOCK..], 0..100), &long.as_bytes()[..100]);
        assert_eq!(out[2 * BLOCK + 345], 0, "no prefix in a PAX entry");
    }

    #[test]
    fn long_link_targets_go_in_a_pax_linkpath_record() {
        let target = "t".repeat(150);
        let e = Entry {
            link: target.clone().into_bytes(),
            ..entry("l", Kind::Symlink)
        };
        let out = encode(&e).unwrap();
        let want = format!("164 linkpath={target}\n");
        assert_eq!(&out[BLOCK..BLOCK + want.len()], want.as_bytes());
        assert_eq!(
            field(&out[2 * BLOCK..], 157..257),
            &target.as_bytes()[..100]
        );
    }

    #[test]
    fn sizes_of_8_gib_and_more_go_in_a_pax_size_record() {
        let mut e = entry("big", Kind::Regular);
        e.size = (1 << 33) - 1;
        assert_eq!(encode(&e).unwrap().len(), BLOCK);
        e.size = 1 << 33;
        let out = encode(&e).unwrap();
        assert_eq!(&out[BLOCK..BLOCK + 19], b"19 size=8589934592\n");
        assert_eq!(field(&out[2 * BLOCK..], 124..136), b"00000000000\0");
    }

    #[test]
    fn device_numbers_beyond_ustar_cannot_be_sent() {
        let mut e = entry("dev", Kind::CharDevice);
        e.dev_major = 1 << 21;
        assert!(encode(&e).is_err());
        e.dev_major = (1 << 21) - 1;
        assert!(encode(&e).is_ok());
    }

    #[test]
    fn the_writer_pads_data_and_closes_with_two_zero_blocks() {
        let mut tar = TarWriter::new(Vec::new());
        let mut e = entry("a", Kind::Regular);
        e.size = 3;
        assert!(tar.append(&e, &b"abcdef"[..]).unwrap());
        let mut dev = entry("d", Kind::CharDevice);
        dev.dev_major = 1 << 21;
        assert!(!tar.append(&dev, io::empty()).unwrap());
        let out = tar.finish().unwrap();
        assert_eq!(out.len(), 4 * BLOCK);
        assert_eq!(&out[BLOCK..BLOCK + 4], b"abc\0");
        assert!(out[2 * BLOCK..].iter().all(|&b| b == 0));

        let mut short = TarWriter::new(Vec::new());
        e.size = 10;
        let err = short.append(&e, &b"abc"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
