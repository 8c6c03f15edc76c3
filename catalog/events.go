package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// Event kinds.
const (
	KindRecorded    = "recorded"     // a new backup record
	KindProved      = "proved"       // a later proof passed
	KindProofFailed = "proof-failed" // a later proof failed
	KindRestored    = "restored"     // a backup was restored somewhere
	KindPruned      = "pruned"       // retention deleted the archive
	KindMissing     = "missing"      // prune found the archive gone
	KindFound       = "found"        // prune found a missing archive again
)

// Event is one link of the audit chain. Hash = BLAKE3(prev ‖ canonical
// event), where the canonical event is the JSON of every field but Hash, and
// prev is the previous event's hash (32 zero bytes for the first).
type Event struct {
	Seq      uint64    `json:"seq"`
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	BackupID string    `json:"backup_id"`
	BodyHash string    `json:"body_hash,omitempty"` // BLAKE3 of the record JSON as stored
	Detail   string    `json:"detail,omitempty"`
	Prev     string    `json:"prev"`
	Hash     string    `json:"hash"`
}

// canonical is the event without its hash, in a fixed field order.
func (e Event) canonical() []byte {
	b, _ := json.Marshal(struct {
		Seq      uint64    `json:"seq"`
		At       time.Time `json:"at"`
		Kind     string    `json:"kind"`
		BackupID string    `json:"backup_id"`
		BodyHash string    `json:"body_hash,omitempty"`
		Detail   string    `json:"detail,omitempty"`
		Prev     string    `json:"prev"`
	}{e.Seq, e.At, e.Kind, e.BackupID, e.BodyHash, e.Detail, e.Prev})
	return b
}

// computeHash returns the hash the event must carry.
func (e Event) computeHash() string {
	prev, err := hex.DecodeString(e.Prev)
	if err != nil || len(prev) != 32 {
		prev = make([]byte, 32) // a malformed prev still hashes; VerifyChain flags it
	}
	h := blake3.New()
	h.Write(prev)
	h.Write(e.canonical())
	return hex.EncodeToString(h.Sum(nil))
}

var genesis = hex.EncodeToString(make([]byte, 32))

func digest(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func appendEvent(tx *bolt.Tx, kind, backupID, bodyHash, detail string) (Event, error) {
	events, meta := tx.Bucket(bucketEvents), tx.Bucket(bucketMeta)
	seq, err := events.NextSequence()
	if err != nil {
		return Event{}, err
	}
	prev := string(meta.Get([]byte("head")))
	if prev == "" {
		prev = genesis
	}
	ev := Event{Seq: seq, At: time.Now().UTC(), Kind: kind, BackupID: backupID, BodyHash: bodyHash, Detail: detail, Prev: prev}
	ev.Hash = ev.computeHash()
	b, err := json.Marshal(ev)
	if err != nil {
		return Event{}, err
	}
	if err := events.Put(seqKey(seq), b); err != nil {
		return Event{}, err
	}
	if err := meta.Put([]byte("head"), []byte(ev.Hash)); err != nil {
		return Event{}, err
	}
	return ev, meta.Put([]byte("head_seq"), seqKey(seq))
}

// Head returns the newest event's sequence number and hash ("" and 0 for an
// empty catalog). Anchor the hash elsewhere to detect a rewritten chain.
func (c *Catalog) Head() (uint64, string, error) {
	var seq uint64
	var hash string
	err := c.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		hash = string(meta.Get([]byte("head")))
		if v := meta.Get([]byte("head_seq")); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, hash, err
}

// Events calls fn for every event with seq ≥ from, oldest first; fn returning
// an error stops the walk with that error.
func (c *Catalog) Events(from uint64, fn func(Event) error) error {
	return c.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketEvents).Cursor()
		for k, v := cur.Seek(seqKey(from)); k != nil; k, v = cur.Next() {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// ChainReport is what VerifyChain found.
type ChainReport struct {
	Events  int    // events walked
	Records int    // records checked against their last event
	Head    string // hash of the newest event
	HeadSeq uint64
	// Broken is nil when everything matched; otherwise the first problem.
	Broken *BrokenLink
}

// OK reports whether the chain and every record matched.
func (r ChainReport) OK() bool { return r.Broken == nil }

// BrokenLink names the first place the catalog does not match itself.
type BrokenLink struct {
	Seq      uint64 // the event where it broke (0 for a record-only problem)
	BackupID string // the record concerned, if any
	What     string // "event hash", "prev link", "sequence", "record body", "head", "toc entries", "time index", "start index"
	Expected string
	Found    string
}

func (b *BrokenLink) Error() string {
	switch {
	case b.What == "toc entries":
		return fmt.Sprintf("TOC entries of %s do not match their digest in the record: expected %s, found %s", b.BackupID, b.Expected, b.Found)
	case b.What == "time index summary":
		return fmt.Sprintf("the time index's summary of %s does not match the record: audit would read it wrong", b.BackupID)
	case b.What == "time index" && b.BackupID != "":
		return fmt.Sprintf("record %s is missing from the time index: restore --as-of and list would not see it", b.BackupID)
	case b.What == "time index" || b.What == "start index":
		return fmt.Sprintf("the %s does not match the records: expected %s, found %s", b.What, b.Expected, b.Found)
	case b.What == "record body":
		return fmt.Sprintf("record %s does not match event %d: body hash expected %s, found %s", b.BackupID, b.Seq, b.Expected, b.Found)
	case b.Seq > 0:
		return fmt.Sprintf("chain broken at event %d (%s): expected %s, found %s", b.Seq, b.What, b.Expected, b.Found)
	}
	return fmt.Sprintf("chain broken (%s): expected %s, found %s", b.What, b.Expected, b.Found)
}

// Is makes errors.Is(link, ErrChainBroken) true.
func (b *BrokenLink) Is(target error) bool { return target == ErrChainBroken }

// ProofFailed marks a broken chain as evidence of tampering (exit code 3).
func (b *BrokenLink) ProofFailed() bool { return true }

// verifyBatch is how many events or records VerifyChain reads before it
// hands them to the cores.
const verifyBatch = 4096

// inParallel runs fn(0) … fn(n-1) on GOMAXPROCS goroutines. A fault or
// panic in fn (a damaged page under a value) is returned as an error.
func inParallel(n int, fn func(i int)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					failed = fmt.Errorf("%w: %v", ErrDamaged, r)
					mu.Unlock()
				}
			}()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
	return failed
}

// VerifyChain walks every event, checking sequence numbers, prev links and
// hashes, then checks every record against the body hash of the last event
// that stored it, and the head in meta against the last event. It reports
// the first broken link; err is for failures to read at all.
func (c *Catalog) VerifyChain() (ChainReport, error) {
	var rep ChainReport
	lastBody := map[string]Event{} // backup id → last event with a body hash
	prev, expectSeq := genesis, uint64(1)
	err := c.view(func(tx *bolt.Tx) error {
		// Events: decoding and hashing each is independent, so batches are
		// done on every core; the links are then checked in order.
		type evResult struct {
			ev     Event
			err    error
			hashOK bool
		}
		cur := tx.Bucket(bucketEvents).Cursor()
		k, v := cur.First()
		for k != nil {
			var keys, vals [][]byte
			for ; k != nil && len(keys) < verifyBatch; k, v = cur.Next() {
				keys, vals = append(keys, k), append(vals, v)
			}
			res := make([]evResult, len(keys))
			if err := inParallel(len(keys), func(i int) {
				res[i].err = json.Unmarshal(vals[i], &res[i].ev)
				res[i].hashOK = res[i].err == nil && res[i].ev.computeHash() == res[i].ev.Hash
			}); err != nil {
				return err
			}
			for i, r := range res {
				seq, ev := binary.BigEndian.Uint64(keys[i]), r.ev
				switch {
				case r.err != nil:
					rep.Broken = &BrokenLink{Seq: seq, What: "event JSON", Expected: "a JSON event", Found: r.err.Error()}
				case ev.Seq != seq || seq != expectSeq:
					rep.Broken = &BrokenLink{Seq: seq, What: "sequence", Expected: fmt.Sprint(expectSeq), Found: fmt.Sprint(ev.Seq)}
				case ev.Prev != prev:
					rep.Broken = &BrokenLink{Seq: seq, What: "prev link", Expected: prev, Found: ev.Prev}
				case !r.hashOK:
					rep.Broken = &BrokenLink{Seq: seq, What: "event hash", Expected: ev.computeHash(), Found: ev.Hash}
				}
				if rep.Broken != nil {
					return nil
				}
				rep.Events++
				if ev.BodyHash != "" {
					lastBody[ev.BackupID] = ev
				}
				prev, expectSeq = ev.Hash, seq+1
				rep.Head, rep.HeadSeq = ev.Hash, seq
			}
		}
		meta := tx.Bucket(bucketMeta)
		if head := string(meta.Get([]byte("head"))); rep.Events > 0 && head != rep.Head {
			rep.Broken = &BrokenLink{Seq: rep.HeadSeq, What: "head", Expected: rep.Head, Found: head}
			return nil
		}
		// Records: each must hash to what its last event says, and every
		// record must have an event.
		byTime, byStart := tx.Bucket(bucketByTime), tx.Bucket(bucketByStart)
		tocChecked := map[string]bool{} // shared entry lists already hashed
		timeCur := byTime.Cursor()
		// Hashing and decoding each record runs on every core, batch by
		// batch; the lookups in the indexes stay on this goroutine.
		type recResult struct {
			digest  string
			head    recordHead
			summary []byte
		}
		bc := tx.Bucket(bucketBackups).Cursor()
		k, v = bc.First()
		for k != nil {
			var keys, vals [][]byte
			for ; k != nil && len(keys) < verifyBatch; k, v = bc.Next() {
				keys, vals = append(keys, k), append(vals, v)
			}
			res := make([]recResult, len(keys))
			if err := inParallel(len(keys), func(i int) {
				res[i].digest = digest(vals[i])
				_ = json.Unmarshal(vals[i], &res[i].head) // a record that is not JSON fails its body hash
				res[i].summary = summarize(&res[i].head)
			}); err != nil {
				return err
			}
			for i, rr := range res {
				id, r := string(keys[i]), &rr.head
				ev, ok := lastBody[id]
				if !ok {
					rep.Broken = &BrokenLink{BackupID: id, What: "record body", Expected: "an event recording it", Found: "none"}
					return nil
				}
				if rr.digest != ev.BodyHash {
					rep.Broken = &BrokenLink{Seq: ev.Seq, BackupID: id, What: "record body", Expected: ev.BodyHash, Found: rr.digest}
					return nil
				}
				// Its index entries: without them restore --as-of and list
				// would not see it; its summary there must be its own.
				tk := timeKey(r.Name, r.StartedAt, id)
				k2, sv := timeCur.Seek(tk)
				if !bytes.Equal(k2, tk) || byStart.Get(startKey(r.StartedAt, id)) == nil {
					rep.Broken = &BrokenLink{Seq: ev.Seq, BackupID: id, What: "time index", Expected: "an index entry for the record", Found: "none"}
					return nil
				}
				if len(sv) > 0 && sv[0] != summaryVersion {
					rr.summary = summarizeAs(r, sv[0]) // written by an earlier pgattest
				}
				if len(sv) > 0 && !bytes.Equal(sv, rr.summary) {
					rep.Broken = &BrokenLink{Seq: ev.Seq, BackupID: id, What: "time index summary", Expected: hex.EncodeToString(rr.summary), Found: hex.EncodeToString(sv)}
					return nil
				}
				if want := r.TOC.EntriesBLAKE3; want != "" && !tocChecked[want] {
					raw, shared := tocEntries(tx, keys[i], want)
					if got := digestOrNone(raw); got != want {
						rep.Broken = &BrokenLink{Seq: ev.Seq, BackupID: id, What: "toc entries", Expected: want, Found: got}
						return nil
					}
					tocChecked[want] = shared
				}
				rep.Records++
				delete(lastBody, id)
			}
		}
		// No index entry without its record (every record has its own,
		// checked above; keys are unique): the counts must agree.
		for _, b := range []struct {
			name string
			b    *bolt.Bucket
		}{{"time index", byTime}, {"start index", byStart}} {
			if n := b.b.Stats().KeyN; n != rep.Records && len(lastBody) == 0 {
				rep.Broken = &BrokenLink{What: b.name, Expected: fmt.Sprintf("%d entries, one per record", rep.Records), Found: fmt.Sprintf("%d entries", n)}
				return nil
			}
		}
		if len(lastBody) > 0 { // events about records that are gone: report the earliest
			ids := make([]string, 0, len(lastBody))
			for id := range lastBody {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return lastBody[ids[i]].Seq < lastBody[ids[j]].Seq })
			ev := lastBody[ids[0]]
			rep.Broken = &BrokenLink{Seq: ev.Seq, BackupID: ids[0], What: "record body", Expected: "the record", Found: "no record with that id"}
		}
		return nil
	})
	return rep, err
}
