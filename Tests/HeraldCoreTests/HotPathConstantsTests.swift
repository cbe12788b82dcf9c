import HeraldLoop
import Testing
@testable import HeraldCore

/// Constants written as literals on the request path agree with their sources.
@Suite struct HotPathConstantsTests {
    @Test func ioEventLiteralsAreTheSystemsValues() {
        #expect([IOEvents.readable, IOEvents.writable, IOEvents.error, IOEvents.hangUp, IOEvents.readHangUp]
                == IOEvents.systemValues)
    }

    @Test func histogramBucketsFollowTheBounds() {
        func slowIndex(_ nanos: UInt64) -> Int {
            var index = 0
            while index < DurationHistogram.nanoBounds.count && nanos > DurationHistogram.nanoBounds[index] { index += 1 }
            return index
        }
        var samples: [UInt64] = [0, 1, UInt64.max]
        for bound in DurationHistogram.nanoBounds { samples += [bound - 1, bound, bound + 1] }
        for nanos in samples {
            #expect(DurationHistogram.bucketIndex(nanos: nanos) == slowIndex(nanos), "at \(nanos) ns")
        }
    }
}
