package gpu.day_test

import rego.v1

import data.gpu.launch

# The decision day read from the text of a UTC time ("...Z") is the day time.format gives, for every
# form of RFC 3339 time OPA parses: fractions of any length, offsets, the last nanosecond of a day.
times := [
	"2026-10-01T00:00:00Z",
	"2026-09-30T23:59:59.999999999Z",
	"2026-10-01T00:00:00.1234567890123Z",
	"2026-10-01T00:00:00,5Z",
	"2026-10-01T00:00:00+00:00",
	"2026-10-01T00:00:00-00:00",
	"2026-10-01T01:00:00+01:00",
	"2026-09-30T23:30:00-00:30",
	"2026-09-30T22:00:00-05:00",
	"2026-02-03T00:30:00+01:00",
	"1970-01-01T00:00:00Z",
	"2262-04-11T00:00:00Z",
]

test_decision_day_is_the_utc_day_of_every_time_form if {
	every t in times {
		day := launch.today with input as {"now": t}
		day == time.format([time.parse_rfc3339_ns(t), "UTC", "2006-01-02"])
	}
}

test_decision_day_of_an_offset_time_is_not_its_local_day if {
	"2026-10-01" == launch.today with input as {"now": "2026-09-30T22:00:00-05:00"}
	"2026-02-02" == launch.today with input as {"now": "2026-02-03T00:30:00+01:00"}
}
