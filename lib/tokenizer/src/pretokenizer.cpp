// Pre-tokenizer steps (eval.md §7.2): Split(Regex | String, behaviour, invert) and ByteLevel(use_regex,
// add_prefix_space). Regexes are the tokenizer.json patterns compiled by PCRE2 with UTF + UCP (so \p{L},
// \p{N}, \s are Unicode-aware) and JIT when available. Input must be valid UTF-8 (the caller sanitises).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "internal.h"
#include "ling/core/error.h"

namespace ling::tok {

const char* const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

Regex::Regex(const std::string& pattern, const std::string& where) {
  int errcode = 0;
  PCRE2_SIZE erroff = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof(msg));
    LING_THROW(where, ": regex does not compile at offset ", erroff, ": ", reinterpret_cast<const char*>(msg));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  LING_CHECK(md != nullptr, "tokenizer: out of memory for regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                  : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      LING_THROW("tokenizer: regex match failed: ", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {  // empty match: step over one code point
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  pcre2_match_data_free(md);
}

namespace {

// Split one piece by the matches of a step; append the resulting pieces.
void split_piece(const PreStep& st, const std::string& piece, std::vector<std::string>& out,
                 std::vector<std::pair<size_t, size_t>>& matches) {
  matches.clear();
  if (st.regex) {
    st.regex->find_all(piece, matches);
  } else if (!st.literal.empty()) {
    for (size_t p = piece.find(st.literal); p != std::string::npos; p = piece.find(st.literal, p + st.literal.size()))
      matches.emplace_back(p, p + st.literal.size());
  }
  // Segments in order: (begin, end, is_match).
  struct Seg { size_t b, e; bool m; };
  std::vector<Seg> segs;
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) segs.push_back({pos, b, false});
    segs.push_back({b, e, true});
    pos = e;
  }
  if (pos < piece.size()) segs.push_back({pos, piece.size(), false});
  if (st.invert)
    for (auto& s : segs) s.m = !s.m;

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.emplace_back(piece.substr(b, e - b));
  };
  switch (st.behavior) {
    case SplitBehavior::Isolated:
      for (auto& s : segs) emit(s.b, s.e);
      break;
    case SplitBehavior::Removed:
      for (auto& s : segs)
        if (!s.m) emit(s.b, s.e);
      break;
    case SplitBehavior::MergedWithPrevious: {  // a match ends the current piece
      size_t start = 0;
      for (auto& s : segs)
        if (s.m) { emit(start, s.e); start = s.e; }
      emit(start, piece.size());
      break;
    }
    case SplitBehavior::MergedWithNext: {  // a match starts a new piece
      size_t start = 0;
      for (auto& s : segs)
        if (s.m && s.b > start) { emit(start, s.b); start = s.b; }
      emit(start, piece.size());
      break;
    }
    case SplitBehavior::Contiguous: {  // adjacent matches form one piece
      size_t i = 0;
      while (i < segs.size()) {
        size_t j = i;
        if (segs[i].m)
          while (j + 1 < segs.size() && segs[j + 1].m) ++j;
        emit(segs[i].b, segs[j].e);
        i = j + 1;
      }
      break;
    }
  }
}

}  // namespace

void pretokenize(const std::vector<PreStep>& steps, std::string_view text, std::vector<std::string>& pieces) {
  std::vector<std::string> cur{std::string(text)}, next;
  std::vector<std::pair<size_t, size_t>> matches;
  for (const PreStep& st : steps) {
    next.clear();
    for (std::string& p : cur) {
      if (st.kind == PreStep::ByteLevel) {
        if (st.add_prefix_space && !p.empty() && p[0] != ' ') p.insert(p.begin(), ' ');
        if (!st.regex) { next.push_back(std::move(p)); continue; }
      }
      split_piece(st, p, next, matches);
    }
    cur.swap(next);
  }
  for (auto& p : cur) pieces.push_back(std::move(p));
}

}  // namespace ling::tok
