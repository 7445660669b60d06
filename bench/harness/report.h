// What rejoin-bench prints and writes: the machine's details, the terminal
// table, JSON, CSV and a hand-written SVG chart.
#pragma once

#include <string>
#include <vector>

#include "case.h"

namespace rejoin::bench {

struct MachineInfo {
  int cores = 0;
  std::string cpu_model;
  std::string kernel;
  std::string libzmq_version;
  std::string storage_type;  // e.g. "ssd (vda)"
  double fdatasync_us = 0;   // median of 50 x (4 KiB write + fdatasync)
};

// Reads /proc, /sys and libzmq; measures fdatasync in `dir`.
MachineInfo ProbeMachine(const std::string& dir);

std::string FormatTable(const std::vector<CaseResult>& cases);
// One number in printf `format` ("%.1f"), for report texts.
std::string Fmt(const char* format, double v);
// `s` as a quoted JSON string.
std::string JsonString(const std::string& s);
// `extra` is added to the top-level object as is (e.g. "\"targets\": [...]"),
// after a comma; empty for none.
std::string ToJson(const MachineInfo& machine,
                   const std::vector<CaseResult>& cases,
                   const std::string& extra = "");
std::string ToCsv(const std::vector<CaseResult>& cases);
// Goodput against loss per system (one panel per window), latency CDFs of
// the lossless cases, and the broker's RSS curve of a soak case if any.
std::string ToSvg(const std::vector<CaseResult>& cases);

// How an idle case's sessions reach the broker, in words.
std::string IdleLayout(const CaseSpec& spec);

}  // namespace rejoin::bench
