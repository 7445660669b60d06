// Output formats. JSON and SVG are written by hand: both are small and fixed.
#include "report.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "shm.h"
#include "stats.h"

namespace rejoin::bench {

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string IdleLayout(const CaseSpec& s) {
  if (s.system == "rejoin" && s.sessions_per_process > 1) {
    return std::to_string(s.sessions_per_process) +
           " sessions per process on one ClientConnection";
  }
  return "one connection per session";
}

namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return Fmt("%.6g", v);
}

std::string Durability(const CaseResult& r) {
  return IsRejoinSystem(r.spec.system) ? r.spec.durability : "none";
}

std::string RecoveryText(const CaseResult& r) {
  std::string out;
  for (std::size_t i = 0; i < r.recovery_ms.size(); ++i) {
    if (i > 0) out += " ";
    const std::string who =
        i < r.spec.kills.size() ? r.spec.kills[i].role.substr(0, 1) : "?";
    out +=
        who + ":" + (r.recovery_ms[i] ? Fmt("%.0f", *r.recovery_ms[i]) : "-");
  }
  return out;
}

}  // namespace

MachineInfo ProbeMachine(const std::string& dir) {
  MachineInfo m;
  m.cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        const std::size_t colon = line.find(':');
        if (colon != std::string::npos) m.cpu_model = line.substr(colon + 2);
        break;
      }
    }
  }
  utsname u{};
  if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release;
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  m.libzmq_version = std::to_string(major) + "." + std::to_string(minor) + "." +
                     std::to_string(patch);

  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    const std::string base = "/sys/dev/block/" +
                             std::to_string(major(st.st_dev)) + ":" +
                             std::to_string(minor(st.st_dev));
    std::string rot = ReadFirstLine(base + "/queue/rotational");
    if (rot.empty()) rot = ReadFirstLine(base + "/../queue/rotational");
    char real[4096];
    const ssize_t n = ::readlink(base.c_str(), real, sizeof real - 1);
    std::string dev = "?";
    if (n > 0) {
      real[n] = '\0';
      dev = real;
      dev = dev.substr(dev.find_last_of('/') + 1);
    }
    if (rot.empty()) {
      m.storage_type = "unknown (" + dev + ", st_dev " +
                       std::to_string(major(st.st_dev)) + ":" +
                       std::to_string(minor(st.st_dev)) + ")";
    } else {
      m.storage_type =
          std::string(rot == "1" ? "rotational" : "non-rotational") + " (" +
          dev + ")";
    }
  }

  const std::string path = dir + "/fdatasync-probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    std::string block(4096, 'f');
    std::vector<double> samples;
    for (int i = 0; i < 50; ++i) {
      const std::int64_t t0 = NowNs();
      if (::write(fd, block.data(), block.size()) !=
          static_cast<ssize_t>(block.size())) {
        break;
      }
      if (::fdatasync(fd) != 0) break;
      samples.push_back(static_cast<double>(NowNs() - t0) / 1e3);
    }
    ::close(fd);
    ::unlink(path.c_str());
    m.fdatasync_us = Median(samples);
  }
  return m;
}

std::string FormatTable(const std::vector<CaseResult>& cases) {
  std::ostringstream out;
  char line[400];
  std::snprintf(line, sizeof line,
                "%-17s %4s %5s %5s %-7s %4s %10s %10s %8s %8s %9s %7s %5s "
                "%-14s %s\n",
                "system", "win", "size", "loss", "durab", "sess", "thr/s",
                "good/s", "p50us", "p99us", "p999us", "lost", "dup",
                "recovery_ms", "notes");
  out << line;
  for (const CaseResult& r : cases) {
    if (r.spec.kind == "idle") {
      std::snprintf(
          line, sizeof line,
          "%-17s idle sessions: %llu (%s), broker VmRSS %.1f MiB%s%s\n",
          r.spec.system.c_str(),
          static_cast<unsigned long long>(r.spec.idle_sessions),
          IdleLayout(r.spec).c_str(),
          static_cast<double>(r.idle_broker_rss_kib) / 1024.0,
          r.ok ? "" : "  FAILED: ", r.error.c_str());
      out << line;
      continue;
    }
    std::string notes;
    if (!r.ok) notes += "FAILED: " + r.error + " ";
    if (r.resends > 0) notes += "resends=" + std::to_string(r.resends) + " ";
    if (r.journal_commits > 0) {
      notes += Fmt("%.1f", static_cast<double>(r.journal_records) /
                               static_cast<double>(r.journal_commits)) +
               " records/commit ";
    }
    if (r.abandoned > 0) {
      notes += "abandoned=" + std::to_string(r.abandoned) + " ";
    }
    if (r.errors > 0) notes += "errors=" + std::to_string(r.errors) + " ";
    if (r.unjournaled_at_kill > 0) {
      notes += "unjournaled=" + std::to_string(r.unjournaled_at_kill) + " ";
    }
    if (r.unexecuted_completions > 0) {
      notes += "UNEXECUTED=" + std::to_string(r.unexecuted_completions) + " ";
    }
    if (!r.spec.kills.empty()) notes += "kills ";
    if (r.spec.system == "rejoin" && r.spec.sessions_per_process > 1) {
      notes += "shared journal x" +
               std::to_string(r.spec.sessions_per_process) + " ";
    }
    if (r.runs > 1) notes += "median of " + std::to_string(r.runs);
    std::snprintf(
        line, sizeof line,
        "%-17s %4llu %5llu %5.2f %-7s %4llu %10.0f %10.0f %8.0f "
        "%8.0f %9.0f %7llu %5llu %-14s %s\n",
        r.spec.system.c_str(), static_cast<unsigned long long>(r.spec.window),
        static_cast<unsigned long long>(r.spec.size), r.spec.loss,
        Durability(r).c_str(), static_cast<unsigned long long>(r.spec.sessions),
        r.throughput_rps, r.goodput_rps, r.p50_us, r.p99_us, r.p999_us,
        static_cast<unsigned long long>(r.lost),
        static_cast<unsigned long long>(r.duplicate_executions),
        RecoveryText(r).c_str(), notes.c_str());
    out << line;
  }
  return out.str();
}

std::string ToJson(const MachineInfo& m, const std::vector<CaseResult>& cases,
                   const std::string& extra) {
  std::ostringstream o;
  o << "{\n  \"machine\": {\"cores\": " << m.cores
    << ", \"cpu_model\": " << JsonString(m.cpu_model)
    << ", \"kernel\": " << JsonString(m.kernel)
    << ", \"libzmq_version\": " << JsonString(m.libzmq_version)
    << ", \"storage_type\": " << JsonString(m.storage_type)
    << ", \"fdatasync_us\": " << JsonNumber(m.fdatasync_us) << "},\n";
  o << "  \"cases\": [";
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CaseResult& r = cases[i];
    const CaseSpec& s = r.spec;
    o << (i == 0 ? "\n" : ",\n") << "    {\"system\": " << JsonString(s.system)
      << ", \"kind\": " << JsonString(s.kind)
      << ", \"target\": " << JsonString(s.target)
      << ", \"window\": " << s.window << ", \"size\": " << s.size
      << ", \"loss\": " << JsonNumber(s.loss)
      << ", \"durability\": " << JsonString(Durability(r))
      << ", \"sessions\": " << s.sessions << ", \"sessions_per_process\": "
      << (IsRejoinSystem(s.system) ? s.sessions_per_process : 1)
      << ", \"servers\": " << s.servers
      << ", \"requests_per_session\": " << s.requests
      << ", \"runs\": " << r.runs << ", \"ok\": " << (r.ok ? "true" : "false")
      << ", \"error\": " << JsonString(r.error)
      << ", \"seconds\": " << JsonNumber(r.seconds)
      << ", \"throughput_rps\": " << JsonNumber(r.throughput_rps)
      << ", \"goodput_rps\": " << JsonNumber(r.goodput_rps)
      << ", \"p50_us\": " << JsonNumber(r.p50_us)
      << ", \"p90_us\": " << JsonNumber(r.p90_us)
      << ", \"p99_us\": " << JsonNumber(r.p99_us)
      << ", \"p999_us\": " << JsonNumber(r.p999_us)
      << ", \"max_us\": " << JsonNumber(r.max_us)
      << ", \"issued\": " << r.issued << ", \"completed\": " << r.completed
      << ", \"lost\": " << r.lost
      << ", \"duplicate_executions\": " << r.duplicate_executions
      << ", \"executions\": " << r.executions << ", \"errors\": " << r.errors
      << ", \"resends\": " << r.resends << ", \"abandoned\": " << r.abandoned
      << ", \"client_journal_commits\": " << r.journal_commits
      << ", \"client_journal_records\": " << r.journal_records
      << ", \"unexecuted_completions\": " << r.unexecuted_completions
      << ", \"unjournaled_at_kill\": " << r.unjournaled_at_kill;
    o << ", \"kills\": [";
    for (std::size_t k = 0; k < s.kills.size(); ++k) {
      o << (k == 0 ? "" : ", ") << "{\"role\": " << JsonString(s.kills[k].role)
        << ", \"at_s\": " << JsonNumber(s.kills[k].at_s) << "}";
    }
    o << "], \"recovery_ms\": [";
    for (std::size_t k = 0; k < r.recovery_ms.size(); ++k) {
      o << (k == 0 ? "" : ", ")
        << (r.recovery_ms[k] ? JsonNumber(*r.recovery_ms[k]) : "null");
    }
    o << "], \"cpu_s\": {";
    bool first = true;
    for (const auto& [role, u] : r.roles) {
      o << (first ? "" : ", ") << JsonString(role) << ": "
        << JsonNumber(u.cpu_s);
      first = false;
    }
    o << "}, \"peak_rss_kib\": {";
    first = true;
    for (const auto& [role, u] : r.roles) {
      o << (first ? "" : ", ") << JsonString(role) << ": " << u.peak_rss_kib;
      first = false;
    }
    o << "}";
    if (s.kind == "idle") {
      o << ", \"idle_sessions\": " << s.idle_sessions
        << ", \"idle_broker_rss_kib\": " << r.idle_broker_rss_kib;
    }
    if (!r.broker_rss.empty()) {
      o << ", \"broker_rss_kib_curve\": [";
      for (std::size_t k = 0; k < r.broker_rss.size(); ++k) {
        o << (k == 0 ? "" : ", ") << "[" << JsonNumber(r.broker_rss[k].first)
          << ", " << r.broker_rss[k].second << "]";
      }
      o << "]";
    }
    o << ", \"notes\": [";
    for (std::size_t k = 0; k < r.notes.size(); ++k) {
      o << (k == 0 ? "" : ", ") << JsonString(r.notes[k]);
    }
    o << "]}";
  }
  o << "\n  ]";
  if (!extra.empty()) o << ",\n  " << extra;
  o << "\n}\n";
  return o.str();
}

std::string ToCsv(const std::vector<CaseResult>& cases) {
  std::ostringstream o;
  o << "system,kind,window,size,loss,durability,sessions,"
       "sessions_per_process,servers,runs,ok,"
       "seconds,throughput_rps,goodput_rps,p50_us,p90_us,p99_us,p999_us,"
       "issued,completed,lost,unjournaled_at_kill,duplicate_executions,errors,"
       "resends,abandoned,"
       "recovery_ms,cpu_s_broker,cpu_s_server,cpu_s_client,"
       "peak_rss_kib_broker,peak_rss_kib_server,peak_rss_kib_client\n";
  for (const CaseResult& r : cases) {
    const CaseSpec& s = r.spec;
    auto role = [&](const char* name, bool cpu) -> std::string {
      auto it = r.roles.find(name);
      if (it == r.roles.end()) return "";
      return cpu ? Fmt("%.3f", it->second.cpu_s)
                 : std::to_string(it->second.peak_rss_kib);
    };
    std::string rec;
    for (std::size_t k = 0; k < r.recovery_ms.size(); ++k) {
      if (k > 0) rec += ";";
      rec += r.recovery_ms[k] ? Fmt("%.1f", *r.recovery_ms[k]) : "";
    }
    o << s.system << "," << s.kind << "," << s.window << "," << s.size << ","
      << s.loss << "," << Durability(r) << "," << s.sessions << ","
      << (IsRejoinSystem(s.system) ? s.sessions_per_process : 1) << ","
      << s.servers << "," << r.runs << "," << (r.ok ? 1 : 0) << ","
      << Fmt("%.3f", r.seconds) << "," << Fmt("%.1f", r.throughput_rps) << ","
      << Fmt("%.1f", r.goodput_rps) << "," << Fmt("%.1f", r.p50_us) << ","
      << Fmt("%.1f", r.p90_us) << "," << Fmt("%.1f", r.p99_us) << ","
      << Fmt("%.1f", r.p999_us) << "," << r.issued << "," << r.completed << ","
      << r.lost << "," << r.unjournaled_at_kill << "," << r.duplicate_executions
      << "," << r.errors << "," << r.resends << "," << r.abandoned << "," << rec
      << "," << role("broker", true) << "," << role("server", true) << ","
      << role("client", true) << "," << role("broker", false) << ","
      << role("server", false) << "," << role("client", false) << "\n";
  }
  return o.str();
}

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                         "#9467bd", "#8c564b", "#e377c2", "#17becf"};

struct Panel {
  double x, y, w, h;  // plot area in SVG units
};

void Axes(std::ostringstream& o, const Panel& p, const std::string& title,
          const std::string& xlabel, const std::string& ylabel) {
  o << "<rect x='" << p.x << "' y='" << p.y << "' width='" << p.w
    << "' height='" << p.h << "' fill='none' stroke='#444'/>\n";
  o << "<text x='" << p.x + p.w / 2 << "' y='" << p.y - 10
    << "' text-anchor='middle' font-weight='bold'>" << title << "</text>\n";
  o << "<text x='" << p.x + p.w / 2 << "' y='" << p.y + p.h + 36
    << "' text-anchor='middle'>" << xlabel << "</text>\n";
  o << "<text transform='translate(" << p.x - 52 << "," << p.y + p.h / 2
    << ") rotate(-90)' text-anchor='middle'>" << ylabel << "</text>\n";
}

// Horizontal grid lines with their values (0..ymax) and x labels (0..xmax)
// at quarters of the panel.
void Grid(std::ostringstream& o, const Panel& p, double ymax, const char* yfmt,
          double xmax, const char* xfmt) {
  for (int t = 0; t <= 4; ++t) {
    const double f = t / 4.0;
    const double y = p.y + p.h - f * p.h;
    o << "<line x1='" << p.x << "' y1='" << y << "' x2='" << p.x + p.w
      << "' y2='" << y << "' stroke='#ddd'/>\n";
    o << "<text x='" << p.x - 4 << "' y='" << y + 4 << "' text-anchor='end'>"
      << Fmt(yfmt, f * ymax) << "</text>\n";
    o << "<text x='" << p.x + f * p.w << "' y='" << p.y + p.h + 16
      << "' text-anchor='middle'>" << Fmt(xfmt, f * xmax) << "</text>\n";
  }
}

// The broker's resident memory over a long run (--soak-minutes): flat is
// what the memory target asks for.
void RssPanel(std::ostringstream& o, const Panel& p,
              const std::vector<std::pair<double, long>>& curve) {
  double max_s = 1, max_mib = 1;
  for (const auto& [sec, kib] : curve) {
    max_s = std::max(max_s, sec);
    max_mib = std::max(max_mib, static_cast<double>(kib) / 1024);
  }
  max_mib *= 1.25;
  Axes(o, p, "rejoin broker RSS at full load", "time (s)", "RSS (MiB)");
  Grid(o, p, max_mib, "%.1f", max_s, "%.0f");
  o << "<polyline fill='none' stroke-width='2' stroke='#444' points='";
  for (const auto& [sec, kib] : curve) {
    o << p.x + sec / max_s * p.w << ","
      << p.y + p.h - static_cast<double>(kib) / 1024 / max_mib * p.h << " ";
  }
  o << "'/>\n";
}

}  // namespace

std::string ToSvg(const std::vector<CaseResult>& cases) {
  // Goodput-vs-loss series: (window) -> (system) -> sorted (loss, goodput).
  std::map<std::uint64_t, std::map<std::string, std::map<double, double>>> good;
  std::set<std::string> systems;
  for (const CaseResult& r : cases) {
    const CaseSpec& s = r.spec;
    if (s.kind != "load" || !s.kills.empty() || s.sessions != 1 ||
        (IsRejoinSystem(s.system) && s.durability != "process")) {
      continue;
    }
    good[s.window][s.system][s.loss] = r.goodput_rps;
    systems.insert(s.system);
  }
  std::map<std::string, std::string> color;
  std::size_t ci = 0;
  for (const std::string& s : systems) color[s] = kColors[ci++ % 8];

  const CaseResult* soak = nullptr;
  for (const CaseResult& r : cases) {
    if (r.spec.kind == "load" && r.broker_rss.size() >= 8) soak = &r;
  }

  const double panel_w = 420, panel_h = 260, margin = 80;
  const std::size_t panels = good.size() + 1 + (soak != nullptr ? 1 : 0);
  const double width =
      margin + static_cast<double>(panels) * (panel_w + margin);
  const double height = panel_h + 200;
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width
    << "' height='" << height << "' font-family='sans-serif' font-size='12'>\n";
  o << "<rect width='100%' height='100%' fill='white'/>\n";

  double px = margin;
  for (const auto& [window, series] : good) {
    Panel p{px, 50, panel_w, panel_h};
    double max_loss = 0, max_good = 1;
    for (const auto& [sys, pts] : series) {
      for (const auto& [loss, g] : pts) {
        max_loss = std::max(max_loss, loss);
        max_good = std::max(max_good, g);
      }
    }
    if (max_loss <= 0) max_loss = 0.1;
    max_good *= 1.1;
    Axes(o, p, "goodput vs loss, window " + std::to_string(window),
         "loss probability per forwarded envelope", "goodput (ops/s)");
    Grid(o, p, max_good, "%.0f", max_loss, "%.3g");
    for (const auto& [sys, pts] : series) {
      o << "<polyline fill='none' stroke-width='2' stroke='" << color[sys]
        << "' points='";
      for (const auto& [loss, g] : pts) {
        o << p.x + loss / max_loss * p.w << ","
          << p.y + p.h - g / max_good * p.h << " ";
      }
      o << "'/>\n";
      for (const auto& [loss, g] : pts) {
        o << "<circle r='3' fill='" << color[sys] << "' cx='"
          << p.x + loss / max_loss * p.w << "' cy='"
          << p.y + p.h - g / max_good * p.h << "'/>\n";
      }
    }
    px += panel_w + margin;
  }

  // Latency CDF of lossless single-session cases, log x axis.
  Panel p{px, 50, panel_w, panel_h};
  double lo = 1e9, hi = 1;
  std::vector<const CaseResult*> cdfs;
  for (const CaseResult& r : cases) {
    const CaseSpec& s = r.spec;
    if (s.kind != "load" || s.loss != 0 || !s.kills.empty() ||
        s.sessions != 1 || r.cdf.empty() ||
        (IsRejoinSystem(s.system) && s.durability != "process")) {
      continue;
    }
    cdfs.push_back(&r);
    lo = std::min(lo, std::max(1.0, r.cdf.front().first));
    hi = std::max(hi, r.cdf.back().first);
  }
  if (lo >= hi) lo = hi / 10;
  const double llo = std::floor(std::log10(lo)),
               lhi = std::ceil(std::log10(hi));
  const double span = std::max(1.0, lhi - llo);
  Axes(o, p, "latency CDF, no loss", "latency (us, log scale)",
       "fraction of operations");
  for (double d = llo; d <= lhi; d += 1) {
    const double x = p.x + (d - llo) / span * p.w;
    o << "<line x1='" << x << "' y1='" << p.y << "' x2='" << x << "' y2='"
      << p.y + p.h << "' stroke='#ddd'/>\n";
    o << "<text x='" << x << "' y='" << p.y + p.h + 16
      << "' text-anchor='middle'>" << Fmt("%.0f", std::pow(10, d))
      << "</text>\n";
  }
  for (int t = 0; t <= 4; ++t) {
    const double y = p.y + p.h - t / 4.0 * p.h;
    o << "<text x='" << p.x - 4 << "' y='" << y + 4 << "' text-anchor='end'>"
      << Fmt("%.2f", t / 4.0) << "</text>\n";
  }
  for (const CaseResult* r : cdfs) {
    const std::string dash =
        r->spec.window == 1 ? "" : " stroke-dasharray='6,3'";
    o << "<polyline fill='none' stroke-width='2' stroke='"
      << color[r->spec.system] << "'" << dash << " points='";
    for (const auto& [us, f] : r->cdf) {
      const double x = p.x + (std::log10(std::max(us, lo)) - llo) / span * p.w;
      o << x << "," << p.y + p.h - f * p.h << " ";
    }
    o << "'/>\n";
  }

  if (soak != nullptr) {
    RssPanel(o, Panel{px + panel_w + margin, 50, panel_w, panel_h},
             soak->broker_rss);
  }

  // Legend.
  double ly = 50 + panel_h + 60;
  double lx = margin;
  for (const auto& [sys, c] : color) {
    o << "<rect x='" << lx << "' y='" << ly - 10
      << "' width='14' height='4' fill='" << c << "'/><text x='" << lx + 20
      << "' y='" << ly - 4 << "'>" << sys << "</text>\n";
    lx += 170;
  }
  o << "<text x='" << margin << "' y='" << ly + 22
    << "'>CDF: solid = window 1, dashed = larger windows. Goodput: unique "
       "operations answered per second.</text>\n";
  o << "</svg>\n";
  return o.str();
}

}  // namespace rejoin::bench
