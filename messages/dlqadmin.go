package messages

import (
	"time"
)

// This file holds the messages of the DLQ management API (docs/contract.md §4):
// the HTTP handlers ask the DLQ actor to replay, discard and bulk-replay
// dead letters, and to keep the audit trail. The handlers send them with
// engine.Request; the DLQ actor forwards them, sender kept, to its replayer
// child, which answers the request's sender once the work it started in the
// background is done.

// Caller identifies who asked for an operation, for the audit trail: the
// TCP peer of the HTTP request and the operator named in the optional
// x-operator header (self-declared, not authenticated).
type Caller struct {
	Addr     string `json:"addr"`
	Operator string `json:"operator,omitempty"`
}

// ReplayTarget is one DLQ entry to replay, resolved by the caller: its
// Redis key, the eventId parsed from the key (legacy "dlq:menu::<id>" keys
// included) and the route its prefix belongs to.
type ReplayTarget struct {
	Key     string
	EventID string
	Route   Route
}

// Replay asks the DLQ actor to publish one entry again. Answered with a
// ReplayResult.
type Replay struct {
	Target ReplayTarget
	Caller Caller
	// Force publishes a value that fails Encoding.CheckValue all the same; the
	// audit record says so and why the value was refused.
	Force bool
}

// ReplayStatus is how a replay or a discard ended.
type ReplayStatus uint8

const (
	// ReplayDone: published (or, for a discard, removed); the entry and its
	// metadata are deleted.
	ReplayDone ReplayStatus = iota + 1
	// ReplayNotFound: no entry at the key (never written, expired, or
	// replayed or discarded by someone else first).
	ReplayNotFound
	// ReplayBusy: another replay or discard of the key holds its lock, in
	// this process or another one.
	ReplayBusy
	// ReplayKafkaFailed: Kafka did not take the record; the entry is kept.
	ReplayKafkaFailed
	// ReplayStoreFailed: Redis failed before anything was published; the
	// entry is kept.
	ReplayStoreFailed
	// ReplayNotRemoved: published, but the entry could not be deleted. Its
	// lock is left to expire rather than released, so no replay of it starts
	// again at once.
	ReplayNotRemoved
	// ReplayUnavailable: the DLQ actor is shutting down or was built
	// without what replays need.
	ReplayUnavailable
	// ReplayInvalid: the target does not match the route table (a key
	// outside its route's prefix, an empty eventId).
	ReplayInvalid
	// ReplayBadValue: the entry's value is not a record of its topic
	// (Encoding.CheckValue); the entry is kept. Fix or discard it, or force it.
	ReplayBadValue
	// ReplayWrongType: the key holds a Redis type other than a string, so
	// it is no dead letter this service wrote; the key is kept.
	ReplayWrongType
	// ReplayTooLarge: the value is larger than Kafka takes; the entry is
	// kept.
	ReplayTooLarge
)

// PerEntry reports whether s is a problem of the entry itself, which no
// retry will fix (the operator fixes, discards or forces it), rather than
// an outage: a bulk job skips such entries and goes on.
func (s ReplayStatus) PerEntry() bool {
	switch s {
	case ReplayInvalid, ReplayBadValue, ReplayWrongType, ReplayTooLarge:
		return true
	}
	return false
}

// String names the status for logs, the audit trail and job errors.
func (s ReplayStatus) String() string {
	switch s {
	case ReplayDone:
		return "done"
	case ReplayNotFound:
		return "not_found"
	case ReplayBusy:
		return "busy"
	case ReplayKafkaFailed:
		return "kafka_failed"
	case ReplayStoreFailed:
		return "store_failed"
	case ReplayNotRemoved:
		return "not_removed"
	case ReplayUnavailable:
		return "unavailable"
	case ReplayInvalid:
		return "invalid"
	case ReplayBadValue:
		return "bad_value"
	case ReplayWrongType:
		return "wrong_type"
	case ReplayTooLarge:
		return "too_large"
	}
	return "unknown"
}

// ReplayResult answers Replay and Discard.
type ReplayResult struct {
	Key    string
	Status ReplayStatus
	// Err says what failed, for every status but ReplayDone.
	Err string
	// Topic, Partition and Offset locate the published record (Replay).
	Topic     string
	Partition int32
	Offset    int64
}

// Discard asks the DLQ actor to delete one entry without publishing it.
// Answered with a ReplayResult (ReplayDone, ReplayNotFound, ReplayBusy,
// ReplayStoreFailed or ReplayUnavailable).
type Discard struct {
	Key    string
	Reason string
	Caller Caller
}

// InvalidTarget is a key a bulk replay matched but cannot replay (it does
// not parse, or no route has its prefix); it counts as invalid.
type InvalidTarget struct {
	Key string
	Err string
}

// BulkReplay asks the DLQ actor to start a job replaying Targets, at most
// Rate per second. Answered with a JobStatus (the new job's) or a
// BulkRefused.
type BulkReplay struct {
	Prefix  string
	Targets []ReplayTarget
	Invalid []InvalidTarget
	// Truncated says the listing stopped at its bound: more keys match.
	Truncated bool
	Rate      int
	Caller    Caller
	// Op is what the job does to each target: JobOpReplay (the default,
	// "") or JobOpKeep (extend its time to live to TTL, see Keep).
	Op  string
	TTL time.Duration
	// Filter describes the filter that chose the targets, for the audit
	// trail ("" without one).
	Filter string
}

// BulkRefused answers a BulkReplay the actor does not start.
type BulkRefused struct {
	Status ReplayStatus // ReplayBusy (too many jobs) or ReplayUnavailable
	Err    string
}

// JobQuery asks the DLQ actor for a job's progress. Answered with a
// JobStatus, or a JobNotFound.
type JobQuery struct{ ID string }

// CancelJob asks the DLQ actor to stop a running job: replays in flight
// finish, no new one starts. Answered with the JobStatus after the cancel
// (State JobCancelled; a job that had already ended keeps its state), or a
// JobNotFound.
type CancelJob struct {
	ID     string
	Caller Caller
}

// JobNotFound answers JobQuery and CancelJob for an unknown job id.
type JobNotFound struct{ ID string }

// Job states.
const (
	JobRunning   = "running"
	JobDone      = "done"
	JobCancelled = "cancelled"
	// JobAborted: stopped by the actor after too many failures in a row
	// (Kafka down), or because the processor shut down.
	JobAborted = "aborted"
)

// JobError is one failed key of a job.
type JobError struct {
	Key string `json:"key"`
	Err string `json:"error"`
}

// JobCounts is a job's progress. Remaining is Matched minus the keys that
// are finished (replayed or kept, failed, skipped or invalid); it includes
// InFlight. Failed counts outages (Redis or Kafka unreachable), which may
// abort the job; Invalid counts entries the job left alone because of a
// problem of their own (a value not of its topic, a wrong Redis type, too
// large for Kafka).
type JobCounts struct {
	Matched   int `json:"matched"`
	Replayed  int `json:"replayed"`
	Kept      int `json:"kept"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Invalid   int `json:"invalid"`
	InFlight  int `json:"inFlight"`
	Remaining int `json:"remaining"`
}

// JobStatus is a bulk replay job as the API shows it.
type JobStatus struct {
	ID    string `json:"jobId"`
	State string `json:"state"`
	// Op is JobOpReplay or JobOpKeep; TTLSeconds is a keep job's TTL.
	Op         string `json:"op"`
	TTLSeconds int64  `json:"ttlSeconds,omitempty"`
	Prefix     string `json:"prefix"`
	Rate       int    `json:"rate"`
	JobCounts
	// Truncated: more keys matched than a job takes; run another job for
	// the rest once this one is done.
	Truncated bool       `json:"truncated"`
	Caller    Caller     `json:"caller"`
	CreatedAt time.Time  `json:"createdAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// EndReason says why a job that did not run to its end stopped.
	EndReason string `json:"endReason,omitempty"`
	// Errors are the first failures (bounded).
	Errors []JobError `json:"errors"`
	// InvalidKeys are the first entries left alone for a problem of their
	// own, with the reason (bounded).
	InvalidKeys []JobError `json:"invalidKeys"`
}

// Audit asks the DLQ actor to append a record to the audit trail
// (fire-and-forget; the actor logs a failed write).
type Audit struct{ Record AuditRecord }

// Audit actions.
const (
	AuditReplay     = "replay"
	AuditDiscard    = "discard"
	AuditBulkStart  = "bulk-start"
	AuditBulkEnd    = "bulk-end"
	AuditBulkCancel = "bulk-cancel"
	AuditBulkDryRun = "bulk-dry-run"
	AuditKeep       = "keep"
)

// Bulk job operations.
const (
	JobOpReplay = "replay"
	JobOpKeep   = "keep"
)

// Keep asks the DLQ actor to extend the time to live of one entry (and of
// its metadata) to TTL from now, never shortening it, so an entry that
// cannot be replayed yet is not lost to its expiry. Answered with a
// KeepResult.
type Keep struct {
	Key    string
	TTL    time.Duration
	Caller Caller
}

// KeepResult answers Keep: Status is ReplayDone, ReplayNotFound,
// ReplayStoreFailed, ReplayInvalid or ReplayUnavailable; TTL is the
// entry's time to live after (0: the entry has no expiry).
type KeepResult struct {
	Key    string
	Status ReplayStatus
	Err    string
	TTL    time.Duration
}

// AuditRecord is one entry of the audit trail, stored as JSON.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Key     string    `json:"key,omitempty"`
	Prefix  string    `json:"prefix,omitempty"`
	EventID string    `json:"eventId,omitempty"`
	Topic   string    `json:"topic,omitempty"`
	JobID   string    `json:"jobId,omitempty"`
	// Outcome is a ReplayStatus name for replays and discards, a job state
	// for bulk records.
	Outcome string     `json:"outcome"`
	Error   string     `json:"error,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	Caller  Caller     `json:"caller"`
	Counts  *JobCounts `json:"counts,omitempty"`
	Rate    int        `json:"rate,omitempty"`
	// Op is set on bulk records of keep jobs (JobOpKeep); TTLSeconds on
	// keep records.
	Op         string `json:"op,omitempty"`
	TTLSeconds int64  `json:"ttlSeconds,omitempty"`
	// Filter describes the filter of a bulk job or dry run, if any.
	Filter string `json:"filter,omitempty"`
	// Forced: a replay asked to publish the value even if it is not a
	// record of its topic; RefusedBecause is what the check said (empty
	// when the value passed it).
	Forced         bool   `json:"forced,omitempty"`
	RefusedBecause string `json:"refusedBecause,omitempty"`
}
