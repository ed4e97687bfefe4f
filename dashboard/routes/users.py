from dashboard.views import users

users.render()
