# Run by `gitlab-rails runner` (roles/gitlab/tasks/runner.yml): the platform's instance runner,
# created once by GitLab's own runner-creation service, so that no admin API token is needed.
# Its authentication token goes to the file CDL_RUNNER_TOKEN_FILE names (mode 0600), never to
# stdout; stdout is one word, "created" or "exists", for Ansible's changed status.
description = ENV.fetch("CDL_RUNNER_DESCRIPTION")
token_file = ENV.fetch("CDL_RUNNER_TOKEN_FILE")

runner = Ci::Runner.instance_type.find_by(description: description)
created = runner.nil?
if created
  admin = User.admins.active.order(:id).first
  abort("no active administrator to create the runner as") if admin.nil?
  response = Ci::Runners::CreateRunnerService.new(
    user: admin,
    params: { runner_type: "instance_type", description: description, run_untagged: true }
  ).execute
  abort("creating the runner failed: #{response.message}") unless response.success?
  runner = response.payload[:runner]
end

File.open(token_file, File::WRONLY | File::CREAT | File::TRUNC, 0o600) do |file|
  file.write(runner.token)
end
File.chmod(0o600, token_file)
puts(created ? "created" : "exists")
