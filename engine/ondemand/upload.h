// UploadLocalEdits: sends an on-demand folder's settled local changes (engine/ondemand/
// local_edits.h) to the store as a syncing engine sends a scan's: each written file chunked
// (FastCDC, as every device cuts it), only the chunks the store lacks sent, the changes
// committed on the versions they were made on. Chunks sent stay in the folder's cache, so the
// file reads back locally once its data file goes.
//
// A commit refused as stale settles its conflicts (LocalEdits::Conflicted, given the store's
// version of each path now); deletions the store holds as a mass delete stay pending until an
// operator decides, and come back if the operator rejects them.
#ifndef CONVERGE_ENGINE_ONDEMAND_UPLOAD_H_
#define CONVERGE_ENGINE_ONDEMAND_UPLOAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/ondemand/chunk_cache.h"
#include "engine/ondemand/local_edits.h"
#include "engine/ondemand/on_demand_view.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

struct UploadOutcome {
  uint64_t committed = 0;       // changes the store took
  uint64_t conflicts = 0;       // refused as stale and settled
  uint64_t held_deletes = 0;    // deletions held by the store for an operator
  std::string held_message;
  uint64_t bytes_sent = 0;      // chunk bytes the store lacked
};

// Sends the changes settled for `quiet`. An error leaves them pending (tried again later).
absl::StatusOr<UploadOutcome> UploadLocalEdits(StoreClient* store, LocalEdits* edits, OnDemandView* view,
                                               ChunkCache* cache, absl::Duration quiet);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_UPLOAD_H_
