// Checkpoint: a model's weights as one view over one or several safetensors files (eval.md §7.1 "Sharded
// checkpoints"): a folder with model.safetensors.index.json and its shards, a folder with model.safetensors,
// or a single .safetensors file. The index is checked: every weight_map entry exists in the named shard, no
// tensor appears in two shards, and every shard tensor is listed.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"

namespace ling {

namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) LING_THROW(path, ": no such file or folder");
  if (!fs::is_directory(path, ec)) {
    ck.files_.push_back(SafetensorsFile::open(path));
  } else {
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index, ec)) {
      std::ifstream in(index);
      if (!in) LING_THROW(index.string(), ": cannot open");
      std::stringstream ss;
      ss << in.rdbuf();
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(ss.str());
      } catch (const nlohmann::json::parse_error& e) {
        LING_THROW(index.string(), ": invalid JSON (", e.what(), ")");
      }
      if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        LING_THROW(index.string(), ": missing object 'weight_map'");
      std::map<std::string, std::string> weight_map;
      std::set<std::string> shard_names;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) LING_THROW(index.string(), ": weight_map entry '", it.key(), "' is not a file name");
        const std::string shard = it.value().get<std::string>();
        if (shard.find('/') != std::string::npos || shard == "..")
          LING_THROW(index.string(), ": weight_map entry '", it.key(), "' names a file outside the folder: ", shard);
        weight_map[it.key()] = shard;
        shard_names.insert(shard);
      }
      std::map<std::string, std::string> seen;  // tensor -> shard that holds it
      for (const auto& shard : shard_names) {
        auto f = SafetensorsFile::open((dir / shard).string());
        for (const auto& t : f->tensors()) {
          auto [it, fresh] = seen.emplace(t.name, shard);
          if (!fresh) LING_THROW(path, ": tensor '", t.name, "' appears in two shards (", it->second, ", ", shard, ")");
          auto w = weight_map.find(t.name);
          if (w == weight_map.end()) LING_THROW(index.string(), ": tensor '", t.name, "' of ", shard, " is not listed in weight_map");
          if (w->second != shard)
            LING_THROW(index.string(), ": tensor '", t.name, "' is mapped to ", w->second, " but stored in ", shard);
        }
        ck.files_.push_back(std::move(f));
      }
      for (const auto& [name, shard] : weight_map)
        if (!seen.count(name)) LING_THROW(index.string(), ": tensor '", name, "' is listed for ", shard, " but missing from it");
    } else if (fs::exists(dir / "model.safetensors", ec)) {
      ck.files_.push_back(SafetensorsFile::open((dir / "model.safetensors").string()));
    } else {
      LING_THROW(path, ": no model.safetensors or model.safetensors.index.json in this folder");
    }
  }
  for (const auto& f : ck.files_)
    for (const auto& t : f->tensors()) {
      auto [it, fresh] = ck.by_name_.emplace(t.name, &t);
      if (!fresh) LING_THROW(path, ": tensor '", t.name, "' appears twice");
    }
  return ck;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) LING_THROW(path_, ": missing tensor '", name, "'");
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& kv : by_name_) n += kv.second->nbytes();
  return n;
}

}  // namespace ling
