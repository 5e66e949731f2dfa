import Config

config :logger, level: :info

# The seed's own block, over several lines, with a target-specific file.
config :mix_tasks_upload_hotswap,
  app_name: :sensor_hub,
  nodes: [:"sensor@nerves.local", :"sensor@10.0.0.2"],
  cookie: "secret token shared between nodes"

import_config "#{config_env()}.exs"

if Mix.target() != :host do
  import_config "target.exs"
end
