//! A read-only memory map of a file that survives the file shrinking under it.
//!
//! Contract: [`MappedFile::map`] maps a whole file or returns `None` (the caller then reads the
//! file instead). If the file is truncated while mapped, the bytes past its new end read as
//! zeros instead of killing the process with `SIGBUS`, and [`MappedFile::faulted`] says so.
//! A `SIGBUS` anywhere else still ends the process as before: a real bug is not hidden.
//!
//! How (unix): touching a mapped page past the end of its file raises `SIGBUS` on the reading
//! thread. A process-wide handler, installed once, looks the faulting address up in a fixed,
//! lock-free registry of the live maps. If a registered map holds it, the handler maps
//! anonymous zero pages (`MAP_FIXED`) over the rest of that map from the faulting page on, flags
//! the map as faulted and returns; the access is retried and reads zeros. Any other `SIGBUS`
//! goes to the handler that was there before, or to the default action, which ends the process.
//!
//! Safety argument:
//! - A slot is registered after its map is created and released before the map is unmapped
//!   (`SeqCst` atomics; the length is set last and cleared first), so a registered range is
//!   always a live map of ours. The handler replaces pages only from the faulting page to the
//!   end of such a range. The faulting thread was reading that map through a borrow of its
//!   `MappedFile`, so the map cannot be released while the handler runs.
//! - The handler allocates nothing and takes no lock: atomic loads and stores, `mmap`,
//!   `sigaction`, `raise` and the previous handler (std's stack-overflow reporter). `mmap` is
//!   not on POSIX's list of async-signal-safe functions, but it is a bare system call that
//!   touches no user-space state, as in other runtimes that recover from faults this way.
//! - A signal sent by a process (`si_code <= 0`) has no fault address and is never handled
//!   here. If other code later replaces the handler, truncation is fatal again, as before.
//! - The bytes behind the slice may change while it is borrowed (another process may write the
//!   file, or truncation turns them into zeros); that is the trade-off of every file map, and
//!   the scanner treats content as plain bytes.
//!
//! Elsewhere (non-unix) nothing is mapped and files are read.

#[cfg(unix)]
pub use unix::MappedFile;

#[cfg(not(unix))]
pub use other::MappedFile;

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::ops::Deref;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Once;

    use memmap2::Mmap;

    /// Live maps at most; more at once are read instead (a walk holds one per thread).
    const SLOTS: usize = 256;

    /// One registered map: the page-aligned start and the byte length of a live map (0 = free).
    pub(super) struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    impl Slot {
        pub(super) const fn new() -> Slot {
            Slot {
                start: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                faulted: AtomicBool::new(false),
            }
        }
    }

    static REGISTRY: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

    /// The page size, set when the handler is installed (`sysconf` is not signal-safe).
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    /// Whether the handler is installed; without it nothing is mapped.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The `SIGBUS` handler that was installed before ours, and its `sa_flags`.
    static PREVIOUS: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
    static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);

    /// Claims a free slot for the map `[start, start + len)`; `start` is not 0.
    pub(super) fn claim(slots: &[Slot], start: usize, len: usize) -> Option<usize> {
        let i = slots
            .iter()
            .position(|s| s.start.compare_exchange(0, start, SeqCst, SeqCst).is_ok())?;
        // `len` is still 0, so the handler does not match the slot until it is complete.
        slots[i].faulted.store(false, SeqCst);
        slots[i].len.store(len, SeqCst);
        Some(i)
    }

    /// Frees a slot: the length first, so a half-freed slot matches nothing.
    pub(super) fn release(slots: &[Slot], i: usize) {
        slots[i].len.store(0, SeqCst);
        slots[i].start.store(0, SeqCst);
    }

    /// The slot whose map holds `addr` (its last page included) and the page-aligned end of
    /// that map.
    pub(super) fn find(slots: &[Slot], addr: usize, page: usize) -> Option<(usize, usize)> {
        slots.iter().enumerate().find_map(|(i, s)| {
            let start = s.start.load(SeqCst);
            if start == 0 || addr < start {
                return None;
            }
            let len = s.len.load(SeqCst);
            let end = start.checked_add(len)?.checked_next_multiple_of(page)?;
            (len > 0 && addr < end).then_some((i, end))
        })
    }

    /// A whole file, mapped read-only; see the module docs.
    pub struct MappedFile {
        // Dropped after `Drop::drop` released the slot: a registered range is always mapped.
        map: Mmap,
        slot: usize,
    }

    impl MappedFile {
        /// Maps `file`, or `None` when it should be read instead: empty, no handler, no free
        /// slot or a failed map.
        pub fn map(file: &File) -> Option<MappedFile> {
            if !install() {
                return None;
            }
            // SAFETY: the map is read-only and private to this value. A file truncated while
            // mapped no longer faults fatally: the handler registered below turns the pages
            // past its end into zeros (module docs). Other writers may still change the bytes,
            // which the scanner tolerates.
            let map = unsafe { Mmap::map(file) }.ok()?;
            if map.is_empty() {
                return None;
            }
            let _ = map.advise(memmap2::Advice::Sequential);
            // `Mmap` maps from offset 0, so its pointer is the page-aligned start of the map.
            let slot = claim(&REGISTRY, map.as_ptr() as usize, map.len())?;
            Some(MappedFile { map, slot })
        }

        /// Whether the file shrank while mapped and a read past its new end got zeros.
        pub fn faulted(&self) -> bool {
            REGISTRY[self.slot].faulted.load(SeqCst)
        }
    }

    impl Deref for MappedFile {
        type Target = [u8];

        fn deref(&self) -> &[u8] {
            &self.map
        }
    }

    impl Drop for MappedFile {
        fn drop(&mut self) {
            release(&REGISTRY, self.slot);
        }
    }

    /// Installs the handler once; whether it is installed.
    fn install() -> bool {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if page <= 0 || !(page as usize).is_power_of_two() {
                return;
            }
            PAGE.store(page as usize, SeqCst);
            // SAFETY: `sigaction` is plain data, valid when zeroed; `on_sigbus` has the
            // signature SA_SIGINFO requires and is async-signal-safe (module docs).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                let handler: Handler = on_sigbus;
                action.sa_sigaction = handler as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &action, &mut old) != 0 {
                    return;
                }
                PREVIOUS.store(old.sa_sigaction, SeqCst);
                PREVIOUS_FLAGS.store(old.sa_flags as usize, SeqCst);
            }
            INSTALLED.store(true, SeqCst);
        });
        INSTALLED.load(SeqCst)
    }

    /// An SA_SIGINFO signal handler.
    type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler. Only a fault
        // (`si_code > 0`, not a signal sent by a process) has a meaningful `si_addr`.
        let addr = unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) };
        let page = PAGE.load(SeqCst);
        let hit = addr.and_then(|a| Some((a, find(&REGISTRY, a, page)?)));
        if let Some((addr, (i, end))) = hit {
            let from = addr & !(page - 1);
            REGISTRY[i].faulted.store(true, SeqCst);
            // SAFETY: `[from, end)` lies inside a registered, hence live, map of ours that the
            // faulting thread is reading (module docs); replacing its pages with zero pages
            // changes no memory anyone else owns.
            let zeros = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                // The access is retried and reads zeros.
                return;
            }
        }
        // SAFETY: not ours: hand the signal on as if this handler were not installed.
        unsafe { pass_on(sig, info, ctx) }
    }

    /// Hands `SIGBUS` to the previous handler, or restores the default action and raises the
    /// signal again, so that the process ends when this handler returns.
    ///
    /// # Safety
    /// Only from the `SIGBUS` handler, with its arguments.
    unsafe fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let previous = PREVIOUS.load(SeqCst);
        if previous != libc::SIG_DFL && previous != libc::SIG_IGN {
            if PREVIOUS_FLAGS.load(SeqCst) & libc::SA_SIGINFO as usize != 0 {
                // SAFETY: installed with SA_SIGINFO, so it has the three-argument signature.
                let f: Handler = unsafe { std::mem::transmute(previous) };
                f(sig, info, ctx);
            } else {
                // SAFETY: installed without SA_SIGINFO, so it takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous) };
                f(sig);
            }
            return;
        }
        // SAFETY: a zeroed `sigaction` with SIG_DFL is valid; `sigaction` and `raise` are
        // async-signal-safe. The raised signal stays pending until this handler returns, then
        // the default action ends the process (for a fault, so would the retried access).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            libc::raise(sig);
        }
    }
}

#[cfg(not(unix))]
mod other {
    use std::fs::File;
    use std::ops::Deref;

    /// Never built here: files are read, not mapped.
    pub enum MappedFile {}

    impl MappedFile {
        /// Always `None`: the caller reads the file.
        pub fn map(_file: &File) -> Option<MappedFile> {
            None
        }

        /// Never called.
        pub fn faulted(&self) -> bool {
            match *self {}
        }
    }

    impl Deref for MappedFile {
        type Target = [u8];

        fn deref(&self) -> &[u8] {
            match *self {}
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::unix::{claim, find, release, Slot};
    use super::MappedFile;
    use std::io::Write;

    /// A file of `len` non-zero bytes and its content.
    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(&content).expect("write");
        f.flush().expect("flush");
        (f, content)
    }

    /// Reads every byte through the map, as a scan would.
    fn read_all(map: &MappedFile) -> Vec<u8> {
        map.iter().map(|&b| std::hint::black_box(b)).collect()
    }

    #[test]
    fn a_file_truncated_while_mapped_reads_zeros_past_its_new_end() {
        let (f, content) = file_of(1 << 20);
        let map = MappedFile::map(f.as_file()).expect("maps");
        assert!(!map.faulted());
        // Not on a page boundary: the rest of the last page reads zeros without a fault.
        let cut = 300_001;
        f.as_file().set_len(cut as u64).expect("truncate");
        let seen = read_all(&map);
        assert_eq!(seen.len(), content.len());
        assert_eq!(seen[..cut], content[..cut]);
        assert!(seen[cut..].iter().all(|&b| b == 0));
        assert!(map.faulted());
    }

    #[test]
    fn a_file_deleted_and_truncated_while_mapped_reads_zeros() {
        let (f, content) = file_of(256 << 10);
        let file = f.reopen().expect("reopen");
        let map = MappedFile::map(&file).expect("maps");
        drop(f); // deletes the path; the map and `file` keep the inode
        file.set_len(0).expect("truncate");
        let seen = read_all(&map);
        assert_eq!(seen.len(), content.len());
        assert!(seen.iter().all(|&b| b == 0));
        assert!(map.faulted());
    }

    #[test]
    fn an_unchanged_file_reads_whole_and_is_not_faulted() {
        let (f, content) = file_of(100_000);
        let map = MappedFile::map(f.as_file()).expect("maps");
        assert_eq!(read_all(&map), content);
        assert!(!map.faulted());
        let (empty, _) = file_of(0);
        assert!(MappedFile::map(empty.as_file()).is_none(), "empty: read");
    }

    #[test]
    fn the_registry_matches_live_ranges_only_and_can_run_full() {
        let slots = [const { Slot::new() }; 2];
        let page = 4096;
        let a = claim(&slots, 0x10000, 5000).expect("free slot");
        let b = claim(&slots, 0x40000, 4096).expect("free slot");
        assert!(
            claim(&slots, 0x80000, 1).is_none(),
            "full: the caller reads"
        );
        // The map's last page counts; below, between and above the maps do not.
        assert_eq!(find(&slots, 0x10000, page), Some((a, 0x12000)));
        assert_eq!(find(&slots, 0x11fff, page), Some((a, 0x12000)));
        assert_eq!(find(&slots, 0x12000, page), None);
        assert_eq!(find(&slots, 0xffff, page), None);
        assert_eq!(find(&slots, 0x40fff, page), Some((b, 0x41000)));
        release(&slots, a);
        assert_eq!(find(&slots, 0x10000, page), None);
        assert_eq!(claim(&slots, 0x80000, 1), Some(a));
    }

    /// Set in the child process of `a_sigbus_outside_our_maps_still_ends_the_process`.
    const CHILD: &str = "TRAWL_TEST_FOREIGN_SIGBUS";

    #[test]
    fn a_sigbus_outside_our_maps_still_ends_the_process() {
        use std::os::unix::process::ExitStatusExt;
        if std::env::var_os(CHILD).is_some() {
            // The child: with the handler installed, fault in a map it does not know.
            let (f, _) = file_of(64 << 10);
            let _ours = MappedFile::map(f.as_file()).expect("maps");
            let (g, _) = file_of(64 << 10);
            // SAFETY: the test wants the fault that follows.
            let foreign = unsafe { memmap2::Mmap::map(g.as_file()) }.expect("maps");
            g.as_file().set_len(0).expect("truncate");
            std::hint::black_box(foreign[32 << 10]);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "source::mapped::tests::a_sigbus_outside_our_maps_still_ends_the_process",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("child runs");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
